"""Training speed of the same workload under each Keras backend.

One invocation loads real LFW faces once (`load_lfw`, in a TensorFlow child
process) into a `.npy` file, then trains the same network on them
(`MirroredConvStack.paper()`, Adam, MSE) under each backend, in one child
process per backend and variant, with `KERAS_BACKEND` set before Keras is
imported. The JAX and PyTorch children read the `.npy` file and never import
TensorFlow (each result says whether it was imported). Variants:

1. `plain`: Keras' own `model.fit(x, x)` of the stack's model, E epochs.
2. `greedy`: `RecursiveTrainer(stack, schedule="greedy")`, E epochs per stage.
3. `end_to_end`: `RecursiveTrainer(stack, schedule="end_to_end")`, E epochs.
4. `levels` (not run by default): the forward pass of each encoder level
   (`Conv2D`) and decoder level (`Conv2DTranspose`) alone on one batch, in
   milliseconds, to show which convolutions a backend is slow at.

Times are of the `fit` call (tracing and compilation included; imports, data
loading and model building excluded). Images per second are images x E / wall
seconds (E per stage for greedy). The repeats are interleaved: within a
repeat the variants run one after the other, each under every backend in
turn, and every repeat rotates both orders by one, so that no backend always
runs first while the machine's speed drifts. The tables give the median of
the repeats and its ratio to TensorFlow's median for the same variant.

A backend may run from its own virtual environment (`--python
jax=.venv-jax/bin/python`; by default `.venv-<backend>/bin/python` in the
repository root when it exists, else this interpreter). A backend may be
listed more than once under a tag, `jax@name`, each with its own environment
settings (`--env "jax@name:XLA_FLAGS=..."`), so that a setting is measured
interleaved with the backend's default run; the tables then also give the
ratio to the untagged run.

Usage (from the repository root):

```
python benchmarks/bench_backends.py                       # every installed backend
python benchmarks/bench_backends.py --images 64 --epochs 1 --repeats 1   # smoke test
python benchmarks/bench_backends.py --backends tensorflow,tensorflow@no_onednn \\
    --variants plain --env tensorflow@no_onednn:TF_ENABLE_ONEDNN_OPTS=0
```
"""

import argparse
import json
import os
import pathlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import machine, positive_int, versions_and_device

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO_ROOT.parent / "shared" / "data" / "lfw"

BACKENDS = ("tensorflow", "jax", "torch")
VARIANTS = ("plain", "greedy", "end_to_end", "levels")
DEFAULT_VARIANTS = ("plain", "greedy", "end_to_end")
_TAG = re.compile(r"[A-Za-z0-9_.+-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _backend_of(run):
    return run.split("@", 1)[0]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_LFW), help="LFW folder or .tgz")
    parser.add_argument(
        "--images",
        type=positive_int("--images", 0),
        default=1024,
        help="LFW faces to train on (0: all 13,233)",
    )
    parser.add_argument("--image-size", type=positive_int("--image-size"), default=128)
    parser.add_argument(
        "--epochs", type=positive_int("--epochs"), default=2, help="E: epochs (per stage)"
    )
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=32)
    parser.add_argument(
        "--repeats",
        type=positive_int("--repeats"),
        default=3,
        help="runs of each backend and variant, interleaved (the median is reported)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help=f"comma-separated runs, each a backend from {BACKENDS}, optionally with a "
        "tag (jax@no_eigen_threads) to run it again with other --env settings; "
        "default: every installed backend",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {VARIANTS}",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="BACKEND=PATH",
        help="the Python of a backend (or of one tagged run), e.g. "
        "jax=.venv-jax/bin/python; repeat it or separate with commas; default: "
        ".venv-BACKEND/bin/python in the repository root when it exists, else this one",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="RUN:NAME=VALUE",
        help="an environment variable for one run's children, e.g. "
        "'jax@eigen1:XLA_FLAGS=--xla_cpu_multi_thread_eigen=false' or "
        "torch@1thread:OMP_NUM_THREADS=1; repeat it for more",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-data", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        parser.error(
            f"--variants must be a comma-separated list from {VARIANTS}. "
            f"Received: --variants {args.variants!r}"
        )
    if len(set(variants)) != len(variants):
        parser.error(f"--variants lists a variant twice. Received: --variants {args.variants!r}")
    args.variants = variants

    if args.backends is None:
        args.runs, args.backends_given = list(BACKENDS), False
    else:
        runs = [r for r in args.backends.split(",") if r]
        bad = [
            r
            for r in runs
            if _backend_of(r) not in BACKENDS
            or ("@" in r and not _TAG.fullmatch(r[r.find("@") + 1 :]))
        ]
        if not runs or bad:
            parser.error(
                f"--backends must be a comma-separated list of runs, each a backend from "
                f"{BACKENDS} optionally followed by @tag (letters, digits, _.+-). "
                f"Received: --backends {args.backends!r}"
            )
        if len(set(runs)) != len(runs):
            parser.error(f"--backends lists a run twice. Received: --backends {args.backends!r}")
        args.runs, args.backends_given = runs, True

    pythons = {}
    for item in (part for value in args.python for part in value.split(",") if part):
        key, sep, path = item.partition("=")
        if not sep or not path or _backend_of(key) not in BACKENDS:
            parser.error(
                f"--python must be BACKEND=PATH (or RUN=PATH) with a backend from {BACKENDS}. "
                f"Received: --python {item!r}"
            )
        if shutil.which(path) is None:
            parser.error(f"--python names no executable file. Received: --python {item!r}")
        pythons[key] = path
    args.python = pythons

    envs = {}
    for item in args.env:
        run, sep, setting = item.partition(":")
        name, eq, value = setting.partition("=")
        if not sep or not eq or not _ENV_NAME.fullmatch(name):
            parser.error(f"--env must be RUN:NAME=VALUE. Received: --env {item!r}")
        if run not in args.runs:
            parser.error(
                f"--env names a run that --backends does not list ({args.runs}). "
                f"Received: --env {item!r}"
            )
        envs.setdefault(run, {})[name] = value
    args.env = envs
    return args


# ---------------------------------------------------------------- children


def run_prepare(args):
    """Decodes the faces with `load_lfw` (TensorFlow) and saves them as .npy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(
        args.data_dir,
        image_size=args.image_size,
        max_images=args.images or None,
        validation_split=0.0,
        test_split=0.0,
        seed=0,
    )
    x = np.ascontiguousarray(splits.numpy("train"), dtype="float32")
    np.save(args.prepare, x)
    print(json.dumps({"shape": list(x.shape), "min": float(x.min()), "max": float(x.max())}))


class _EpochTimer:
    """Wall seconds of every epoch, with the stage the trainer logs (1 for plain Keras)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                stage = int((logs or {}).get("stage", 1))
                self.epochs.append((stage, time.perf_counter() - self.start))

        return Timer()


def _time_levels(stack, x, batch_size):
    """Forward milliseconds of each encoder and decoder level alone, on one batch."""
    import numpy as np

    def timed(model, batch):
        for _ in range(2):
            model.predict_on_batch(batch)  # traced and warmed up here
        times = []
        for _ in range(5):
            start = time.perf_counter()
            np.asarray(model.predict_on_batch(batch))
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000, model.predict_on_batch(batch)

    rows = []
    batch = x[:batch_size]
    for level, (encoder, decoder) in enumerate(
        zip(stack.encoder_levels, stack.decoder_levels), start=1
    ):
        encode_ms, code = timed(encoder, batch)
        code = np.asarray(code)
        decode_ms, _ = timed(decoder, code)
        rows.append([level, list(batch.shape[1:]), encode_ms, decode_ms])
        batch = code
    return rows


class _NoTensorFlow:
    """A meta path finder under which `import tensorflow` raises `ImportError`.

    The package depends on TensorFlow, so it is installed beside JAX and
    PyTorch, and Keras imports it whenever it is installed (to seed it, and
    in `serialize_keras_object`, for `tf.TensorShape`), whatever the backend:
    about a second and 300 MiB more per process. Keras treats the
    `ImportError` as "not installed", as in an environment without
    TensorFlow.
    """

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, self)  # origin None: not a file
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError(f"{module.__name__} is kept out of this benchmark's child process")


def run_child(args):
    backend = os.environ.get("KERAS_BACKEND")
    if backend not in BACKENDS:
        raise SystemExit(f"KERAS_BACKEND must be one of {BACKENDS}; it is {backend!r}")
    if backend != "tensorflow":
        sys.meta_path.insert(0, _NoTensorFlow())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    x = np.load(args.child_data)
    keras.utils.set_random_seed(0)
    stack = MirroredConvStack.paper(input_shape=x.shape[1:])
    variant = args.child
    result = {"backend": backend, "variant": variant, "images": len(x), "epochs": args.epochs}
    timer = _EpochTimer()
    start, cpu = time.perf_counter(), time.process_time()
    if variant == "levels":
        result["levels"] = _time_levels(stack, x, args.batch_size)
        history = None
    elif variant == "plain":
        model = stack
        model.compile(optimizer="adam", loss="mse")
        start, cpu = time.perf_counter(), time.process_time()
        history = model.fit(
            x, x, epochs=args.epochs, batch_size=args.batch_size, verbose=0, callbacks=[timer]
        )
    else:
        trainer = RecursiveTrainer(stack, schedule=variant)
        trainer.compile(optimizer="adam", loss="mse")
        start, cpu = time.perf_counter(), time.process_time()
        history = trainer.fit(
            x, epochs=args.epochs, batch_size=args.batch_size, verbose=0, callbacks=[timer]
        )
    result["wall_s"] = time.perf_counter() - start
    result["cpu_s"] = time.process_time() - cpu
    if history is not None:
        result["images_per_s"] = len(x) * args.epochs / result["wall_s"]
        result["loss"] = float(history.history["loss"][-1])
        result["epoch_s"] = timer.epochs
    _, result["versions"], result["device"] = versions_and_device()
    # The JAX and torch children must not pay for TensorFlow (nor use it).
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# ---------------------------------------------------------------- parent


def schedule(runs, variants, repeats):
    """(repeat, variant, run) in the order they run.

    Within a repeat the variants run one after the other, each under every
    run in turn; each repeat starts one variant and one run later than the
    one before, so that no backend always runs first while the machine's
    speed drifts.
    """
    order = []
    for repeat in range(repeats):
        v, r = repeat % len(variants), repeat % len(runs)
        for variant in variants[v:] + variants[:v]:
            order += [(repeat + 1, variant, run) for run in runs[r:] + runs[:r]]
    return order


def _python_of(args, run):
    backend = _backend_of(run)
    if run in args.python:
        return args.python[run]
    if backend in args.python:
        return args.python[backend]
    venv = REPO_ROOT / f".venv-{backend}" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _installed(python, backend):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def _env(args, run):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=_backend_of(run))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
    )
    env.update(args.env.get(run, {}))
    return env


def _spawn(args, run, variant, data):
    argv = [_python_of(args, run), __file__, "--child", variant, "--child-data", data]
    argv += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    load_before = os.getloadavg()[0]
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(args, run))
    result = {"run": run, "variant": variant}
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        result["failed"] = done.returncode
        return result
    result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    result["env"] = args.env.get(run, {})
    result["load"] = [load_before, os.getloadavg()[0]]
    return result


def _prepare(args, folder):
    path = os.path.join(folder, "faces.npy")
    python = _python_of(args, "tensorflow")
    argv = [python, __file__, "--prepare", path, "--data-dir", args.data_dir]
    argv += ["--images", str(args.images), "--image-size", str(args.image_size)]
    env = dict(_env(args, "tensorflow"), KERAS_BACKEND="tensorflow")
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit("Loading the faces failed (it needs TensorFlow); see above.")
    return path, json.loads(done.stdout.strip().splitlines()[-1])


def _median(results, key="wall_s"):
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def _ratio(value, reference):
    return f"{value / reference:.2f}" if value and reference else "n/a"


def _print_tables(args, runs):
    trained = [v for v in args.variants if v != "levels"]
    tagged = any("@" in r for r in args.runs)
    if trained:
        print()
        head = "| run | variant | wall s, each repeat | median s | images/s | time / TensorFlow's |"
        rule = "|---|---|---|---:|---:|---:|"
        if tagged:
            head += " time / untagged run's |"
            rule += "---:|"
        print(head)
        print(rule)
        for variant in trained:
            reference = _median(runs.get(("tensorflow", variant), []))
            for run in args.runs:
                results = runs[(run, variant)]
                walls = ", ".join(
                    f"{r['wall_s']:.1f}" if "wall_s" in r else "failed" for r in results
                )
                median = _median(results)
                speed = f"{_median(results, 'images_per_s'):.1f}" if median else "n/a"
                line = (
                    f"| {run} | {variant} | {walls} | {f'{median:.1f}' if median else 'n/a'} "
                    f"| {speed} | {_ratio(median, reference)} |"
                )
                if tagged:
                    base = _median(runs.get((_backend_of(run), variant), []))
                    line += f" {_ratio(median, base) if '@' in run else ''} |"
                print(line)

        # The same medians as images per second, one row per run.
        print()
        print("| run | " + " | ".join(trained) + " |")
        print("|---|" + "---:|" * len(trained))
        for run in args.runs:
            cells = []
            for variant in trained:
                speed = _median(runs[(run, variant)], "images_per_s")
                median = _median(runs[(run, variant)])
                reference = _median(runs.get(("tensorflow", variant), []))
                cells.append(f"{speed:.1f} ({_ratio(median, reference)}x)" if speed else "failed")
            print(f"| {run} | " + " | ".join(cells) + " |")
        print("(images/s, median of the repeats; in brackets the time over TensorFlow's)")

    _print_epochs(args, runs)
    if "levels" in args.variants:
        _print_levels(args, runs)


def _print_epochs(args, runs):
    """First against later epochs (compilation), and greedy's seconds per stage."""
    if args.epochs < 2:
        return
    rows = []
    for variant in ("plain", "end_to_end", "greedy"):
        if variant not in args.variants:
            continue
        for run in args.runs:
            firsts, laters = [], []
            for r in runs[(run, variant)]:
                if "epoch_s" not in r:
                    continue
                seen, first, later = set(), 0.0, 0.0
                for stage, seconds in r["epoch_s"]:
                    if stage in seen:
                        later += seconds
                    else:
                        first += seconds
                        seen.add(stage)
                firsts.append(first)
                laters.append(later)
            if firsts:
                rows.append((run, variant, statistics.median(firsts), statistics.median(laters)))
    if rows:
        print()
        print(
            "| run | variant | first epoch of each phase s | later epochs s "
            "| later epochs images/s |"
        )
        print("|---|---|---:|---:|---:|")
        for run, variant, first, later in rows:
            images = next(r["images"] for r in runs[(run, variant)] if "images" in r)
            speed = images * (args.epochs - 1) / later if later else 0.0
            print(f"| {run} | {variant} | {first:.1f} | {later:.1f} | {speed:.1f} |")

    if "greedy" in args.variants:
        per_stage = {}
        for run in args.runs:
            stages = {}
            for r in runs[(run, "greedy")]:
                for stage, seconds in _last_epochs(r.get("epoch_s", [])).items():
                    stages.setdefault(stage, []).append(seconds)
            per_stage[run] = {s: statistics.median(v) for s, v in stages.items()}
        stages = sorted({s for v in per_stage.values() for s in v})
        if stages:
            print()
            print("Greedy, the last epoch of each stage, seconds (median of the repeats):")
            print()
            print("| stage | " + " | ".join(args.runs) + " |")
            print("|---:|" + "---:|" * len(args.runs))
            for stage in stages:
                cells = [
                    f"{per_stage[run][stage]:.2f}" if stage in per_stage[run] else "n/a"
                    for run in args.runs
                ]
                print(f"| {stage} | " + " | ".join(cells) + " |")


def _last_epochs(epoch_s):
    last = {}
    for stage, seconds in epoch_s:
        last[stage] = seconds
    return last


def _print_levels(args, runs):
    print()
    print(
        f"Forward pass of each level alone on {args.batch_size} images, ms "
        "(median of 5 calls; median of the repeats), encoder (Conv2D) / decoder "
        "(Conv2DTranspose):"
    )
    print()
    print("| level | input | " + " | ".join(args.runs) + " |")
    print("|---:|---|" + "---|" * len(args.runs))
    tables = {}
    for run in args.runs:
        rows = [r["levels"] for r in runs[(run, "levels")] if "levels" in r]
        tables[run] = rows
    depth = max((len(rows[0]) for rows in tables.values() if rows), default=0)
    for i in range(depth):
        shape = next(rows[0][i][1] for rows in tables.values() if rows)
        cells = []
        for run in args.runs:
            rows = tables[run]
            if not rows:
                cells.append("failed")
                continue
            encode = statistics.median(r[i][2] for r in rows)
            decode = statistics.median(r[i][3] for r in rows)
            cells.append(f"{encode:.1f} / {decode:.1f}")
        print(f"| {i + 1} | {tuple(shape)} | " + " | ".join(cells) + " |")


def main(argv=None):
    args = parse_args(argv)
    if args.prepare:
        return run_prepare(args)
    if args.child:
        return run_child(args)
    print(f"# bench_backends {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {machine()}")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    runs = []
    for run in args.runs:
        python = _python_of(args, run)
        if _installed(python, _backend_of(run)):
            runs.append(run)
        elif args.backends_given:
            raise SystemExit(f"{_backend_of(run)} is not installed for {python} (run {run}).")
        else:
            print(f"# {run}: not installed for {python}, skipped")
    args.runs = runs
    for run in runs:
        settings = " ".join(f"{k}={v}" for k, v in args.env.get(run, {}).items())
        print(f"# run {run}: {_python_of(args, run)}{', ' + settings if settings else ''}")
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as folder:
        data, shape = _prepare(args, folder)
        print(
            f"# data: {shape['shape'][0]} LFW faces at {args.image_size}x{args.image_size}, "
            f"batch {args.batch_size}; MirroredConvStack.paper(); Adam, MSE; "
            f"E={args.epochs}; variants {args.variants}; {args.repeats} repeats"
        )
        results = {(run, v): [] for run in runs for v in args.variants}
        for repeat, variant, run in schedule(runs, args.variants, args.repeats):
            result = _spawn(args, run, variant, data)
            result["repeat"] = repeat
            print(f"# {json.dumps(result)}", flush=True)
            results[(run, variant)].append(result)
    for run in runs:
        done = next(
            (r for rs in results.values() for r in rs if r["run"] == run and "versions" in r), None
        )
        if done:
            versions = ", ".join(f"{k} {v}" for k, v in done["versions"].items())
            print(f"# {run}: {versions}; device {done['device']}")
    _print_tables(args, results)


if __name__ == "__main__":
    main()
