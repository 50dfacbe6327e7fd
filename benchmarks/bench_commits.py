"""One benchmark variant under two commits of the library, interleaved.

Checks out each commit's `keras_recursive_ae` package into a temporary
folder (`git archive`), then runs this checkout's
`benchmarks/bench_training.py --child VARIANT` with that package first on
`PYTHONPATH`, alternating the commits (A B, B A, A B, ...) so that neither
always runs first while the machine's speed drifts. Prints every run's wall
time and peak memory, the medians and the ratio of the medians (B / A).

    python benchmarks/bench_commits.py 6a97c0d HEAD --variant greedy_cached \\
        --repeats 4 -- --images 0

Arguments after `--` go to `bench_training.py`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit_a", help="the reference commit, e.g. 6a97c0d")
    parser.add_argument("commit_b", help="the commit measured against it, e.g. HEAD")
    parser.add_argument("--variant", default="greedy_cached", help="bench_training variant")
    parser.add_argument("--repeats", type=int, default=4, help="runs of each commit")
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.bench_args = argv[split + 1 :]  # after --: bench_training's arguments
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: --repeats {args.repeats}")
    return args


def checkout(commit, folder):
    """The library package of `commit`, extracted under `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "keras_recursive_ae"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run(package_root, args):
    env = dict(os.environ, PYTHONPATH=str(package_root), TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_training.py"),
        "--child",
        args.variant,
        *args.bench_args,
    ]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    print(f"# bench_commits {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores")
    print(f"# command: {' '.join(['python'] + sys.argv)}")
    results = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        roots = {"A": checkout(args.commit_a, Path(a)), "B": checkout(args.commit_b, Path(b))}
        for repeat in range(args.repeats):
            for name in "AB" if repeat % 2 == 0 else "BA":
                result = run(roots[name], args)
                results[name].append(result)
                print(
                    f"{name} run {repeat + 1}: wall {result['wall_s']:.1f} s, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MiB",
                    flush=True,
                )
    medians = {
        name: (
            statistics.median(r["wall_s"] for r in runs),
            statistics.median(r["peak_rss_mb"] for r in runs),
        )
        for name, runs in results.items()
    }
    for name, commit in (("A", args.commit_a), ("B", args.commit_b)):
        wall, peak = medians[name]
        print(f"{name} = {commit}: median wall {wall:.1f} s, median peak RSS {peak:.0f} MiB")
    print(
        f"B / A: wall {medians['B'][0] / medians['A'][0]:.3f}, "
        f"peak RSS {medians['B'][1] / medians['A'][1]:.3f}"
    )


if __name__ == "__main__":
    main()
