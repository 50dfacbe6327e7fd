"""What writing a cache costs in fresh memory, against memory already used.

A stage cache is written row by row into a large NumPy array. The first
write to each page of a fresh allocation makes the operating system hand out
(and zero) that page; on some virtual machines the host must also back it.
Each round writes `--gib` GiB of float32, in three child processes of their
own, each after `--pause` seconds without allocating (so that memory an
earlier child freed is as cold as a new stage's would be):

- `fresh`: into a new `np.empty` array, then into the same array again
  (`reused`: what writing a cache over the one it is computed from costs);
- `touched`: into a new buffer from `stage_inputs._fresh_memory`, which
  touches its pages from one thread per core first, as `StageInputCache`
  does (the time includes the touching);
- `small_pages`: the same, in memory mapped with `MADV_NOHUGEPAGE` (Linux):
  NumPy asks for transparent huge pages (2 MiB) for large arrays, and this
  shows what that choice costs or saves at the first write.

The `huge MiB` columns say how much of each array the kernel gave as huge
pages (`AnonHugePages`).

Usage (from the repository root):

```
python benchmarks/bench_fresh_memory.py
python benchmarks/bench_fresh_memory.py --gib 0.5 --rounds 5
```
"""

import argparse
import json
import mmap
import os
import pathlib
import platform
import subprocess
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the array")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=20.0, help="seconds between rounds")
    parser.add_argument(
        "--child", choices=("fresh", "touched", "small_pages"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def run_child(args):
    import numpy as np

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from keras_recursive_ae.stage_inputs import _fresh_memory, _touch_pages

    nbytes = int(args.gib * 2**30) // 4 * 4
    start = time.perf_counter()
    if args.child == "fresh":
        array = np.empty(nbytes // 4, dtype=np.float32)
    elif args.child == "touched":
        array = _fresh_memory(nbytes).view(np.float32)
    else:
        memory = mmap.mmap(-1, nbytes)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux only
            memory.madvise(mmap.MADV_NOHUGEPAGE)
        buffer = np.frombuffer(memory, dtype=np.uint8)
        _touch_pages(buffer)
        array = buffer.view(np.float32)
    array[:] = 1.0
    first = time.perf_counter() - start
    start = time.perf_counter()
    array[:] = 2.0
    again = time.perf_counter() - start
    print(json.dumps({"first_s": first, "again_s": again, "huge_mib": _huge_mib()}))


def _huge_mib():
    try:
        with open("/proc/self/smaps_rollup") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages"))
    except (OSError, StopIteration):
        return float("nan")
    return kib / 1024


def _child(args, method):
    time.sleep(args.pause)
    argv = [sys.executable, __file__, "--child", method, "--gib", str(args.gib)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    print(f"# bench_fresh_memory {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"# command: {' '.join(['python'] + sys.argv)}")
    print()
    print(f"| round | fresh {args.gib:g} GiB s | touched first s | small pages, touched first s "
          "| reused s | fresh / touched | huge MiB: fresh, touched, small pages |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for round_ in range(1, args.rounds + 1):
        fresh, touched, small = (_child(args, c) for c in ("fresh", "touched", "small_pages"))
        print(f"| {round_} | {fresh['first_s']:.2f} | {touched['first_s']:.2f} "
              f"| {small['first_s']:.2f} | {fresh['again_s']:.2f} "
              f"| {fresh['first_s'] / touched['first_s']:.1f} "
              f"| {fresh['huge_mib']:.0f}, {touched['huge_mib']:.0f}, {small['huge_mib']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
