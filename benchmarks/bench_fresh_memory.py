"""What writing a cache costs in fresh memory, against memory already used.

A stage cache is written row by row into a large NumPy array. The first
write to each page of a fresh allocation makes the operating system hand out
(and zero) that page; on some virtual machines the host must also back it.
This script writes `--gib` GiB of float32 into a fresh array, then into the
same array again (what `StageInputCache` does when it reuses a freed cache's
memory), and prints both times and their ratio. Each round runs in a child
process of its own, after `--pause` seconds without allocating, so memory
that an earlier round freed is as cold as a new stage's would be.

Usage (from the repository root):

```
python benchmarks/bench_fresh_memory.py
python benchmarks/bench_fresh_memory.py --gib 0.5 --rounds 5
```
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the array")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=20.0, help="seconds between rounds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_child(args):
    import numpy as np

    count = int(args.gib * 2**30) // 4
    start = time.perf_counter()
    array = np.empty(count, dtype=np.float32)
    array[:] = 1.0
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    array[:] = 2.0
    reused = time.perf_counter() - start
    print(json.dumps({"fresh_s": fresh, "reused_s": reused}))


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    print(f"# bench_fresh_memory {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"# command: {' '.join(['python'] + sys.argv)}")
    print()
    print(f"| round | fresh {args.gib:g} GiB s | reused s | fresh / reused |")
    print("|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        time.sleep(args.pause)
        argv = [sys.executable, __file__, "--child", "--gib", str(args.gib)]
        result = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        print(f"| {round_} | {result['fresh_s']:.2f} | {result['reused_s']:.2f} "
              f"| {result['fresh_s'] / result['reused_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
