"""Time and memory of recursive training against plain Keras, on real LFW faces.

One invocation runs every variant on the same data (LFW JPEG files decoded
by `keras_recursive_ae.datasets.lfw.load_lfw`'s `tf.data` pipeline, as a user would
feed them) and the same architecture (`MirroredConvStack.paper()`), each in
a child process of its own so that peak memory is measured separately.
`--repeats N` runs every variant N times, interleaved: each repeat runs
every variant once, starting one variant later than the repeat before, so
that no variant always runs first (or last) while the machine's speed drifts.

The anchors, plain Keras as users write it:

1. `plain_numpy`: the faces decoded once into one NumPy array (outside the
   timed region), then `model.fit(x, x, batch_size=B, epochs=E,
   shuffle=True)` of the stacked autoencoder.
2. `plain`: `Model.fit` on `load_lfw`'s `tf.data` pipeline, E epochs (JPEG
   decoding inside the timed region), with `tf.data` autotuning off;
   `plain_autotune_on` switches it back on (with it, training sometimes sat
   idle for tens of seconds; see docs/performance.md).

The best plain pipeline is whichever of the plain variants that ran
(`plain`, `plain_autotune_on`, `plain_numpy`) has the lowest median wall
time; every row is divided by it and by `plain_numpy`.

The library, and recipes for contrast:

3. `end_to_end`: `RecursiveTrainer(schedule="end_to_end")`, E epochs.
4. `greedy_cached`: `RecursiveTrainer`, greedy, E epochs per stage, stage
   inputs cached (`cache="auto"`), each stage's input computed from the
   previous stage's.
   `greedy_cached_f16`: the same with `cache_dtype="float16"`;
   `greedy_disk`: the same with `cache="disk"` (every cache in a file).
5. `greedy_uncached`: the same with `cache="off"` (every step runs the
   frozen levels again).
6. `greedy_recipe`: the same greedy schedule as people write it with plain
   Keras, without this library: decode the images into one NumPy array
   (inside the timed region, unlike `plain_numpy`), then for each level
   `fit` a model of that level's encoder and decoder on the array
   (`fit(x, x, shuffle=True)`) and `predict` the next level's input with
   its encoder.
7. With `--jit`: `plain_jit` and `greedy_cached_jit`, `jit_compile=True`
   (divided by the same anchors, but not counted as a plain pipeline).

The default list is `plain`, `plain_autotune_on`, `plain_numpy`,
`end_to_end`, `greedy_cached`; `--variants all` runs every variant above.
`plain` and `plain_numpy` are always added.

The main table, one row per variant, over its successful runs: the median
wall-clock and CPU seconds of the `fit` call (tracing, cache passes and, but
for `plain_numpy`, JPEG decoding included; imports, model building
excluded; with an even number of runs, the mean of the middle two); the
ratio of these medians to `plain_numpy`'s and to the best plain pipeline's
medians (CPU divided by the CPU median of that same pipeline); the peak
resident memory of the child process (`ru_maxrss`), the largest over the
runs; and the medians of the last epoch's training loss and of the sum of
squared errors per image on the first 100 faces. A second table lists
every run's wall seconds in repeat order and the slowest over the fastest;
a third gives, for the trainers, the medians of the time inside the phases'
`fit`, in cache passes and the rest (each its own median: they need not add
up to the median wall time).

Usage (from the repository root):

```
python benchmarks/bench_training.py                      # 128x128, 4 repeats
python benchmarks/bench_training.py --images 0           # all faces
python benchmarks/bench_training.py --image-size 32 --images 256 --repeats 1  # quick
python benchmarks/bench_training.py --jit                # + XLA rows
python benchmarks/bench_training.py --profile            # where a step's time goes
```
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

from bench_common import machine

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO_ROOT.parent / "shared" / "data" / "lfw"

VARIANTS = (
    "plain",
    "plain_autotune_on",
    "plain_numpy",
    "end_to_end",
    "greedy_cached",
    "greedy_cached_f16",
    "greedy_disk",
    "greedy_uncached",
    "greedy_recipe",
)
JIT_VARIANTS = ("plain_jit", "greedy_cached_jit")
DEFAULT_VARIANTS = ("plain", "plain_autotune_on", "plain_numpy", "end_to_end", "greedy_cached")
# The plain Keras pipelines the best anchor is chosen from (not the XLA one).
PLAIN_VARIANTS = ("plain", "plain_autotune_on", "plain_numpy")
NUMPY_ANCHOR = "plain_numpy"
BEST_PLAIN = "best plain"
ANCHORS = (NUMPY_ANCHOR, BEST_PLAIN)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_LFW), help="LFW folder or .tgz")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument(
        "--images", type=int, default=4000, help="images to train on (0: all 13,233)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="E: epochs (per stage)")
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=1,
        help="compile argument of every variant (Keras' default: 1)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {VARIANTS + JIT_VARIANTS}, or 'all' "
        "(plain and plain_numpy are always added)",
    )
    parser.add_argument(
        "--jit", action="store_true", help="also run plain Keras and greedy with jit_compile=True"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=4,
        help="runs of each variant, interleaved, each repeat in an order rotated by one "
        "(the medians are reported)",
    )
    parser.add_argument("--profile", action="store_true", help="print a per-stage step profile")
    parser.add_argument("--profile-rounds", type=int, default=7, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: --repeats {args.repeats}")
    return args


def variant_list(spec, jit=False):
    """The variants to run, in order, from `--variants` and `--jit`.

    `"all"` stands for every variant but the XLA ones. `plain` and
    `plain_numpy`, the anchors, are put first when missing.
    """
    variants = []
    for name in spec.split(","):
        for variant in VARIANTS if name == "all" else (name,) if name else ():
            if variant not in variants:
                variants.append(variant)
    if jit:
        variants += [v for v in JIT_VARIANTS if v not in variants]
    unknown = [v for v in variants if v not in VARIANTS + JIT_VARIANTS]
    if unknown:
        raise SystemExit(f"Unknown variants: {unknown}. Expected some of {VARIANTS + JIT_VARIANTS}")
    missing = [v for v in ("plain", NUMPY_ANCHOR) if v not in variants]
    return missing + variants


# ---------------------------------------------------------------- children


def _data(args):
    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(
        args.data_dir,
        image_size=args.image_size,
        max_images=args.images or None,
        validation_split=0.0,
        test_split=0.0,
        batch_size=args.batch_size,
        seed=0,
    )
    return splits


def _decoded(splits):
    """The training faces decoded into one NumPy array, as recipes do."""
    import numpy as np

    return np.concatenate([np.asarray(batch) for batch in splits.train])


def _stack(args, image_shape):
    from keras_recursive_ae import MirroredConvStack

    return MirroredConvStack.paper(input_shape=image_shape, base_filters=args.base_filters)


def run_child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from keras_recursive_ae import RecursiveTrainer
    from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

    variant = args.child
    keras.utils.set_random_seed(0)
    splits = _data(args)
    stack = _stack(args, splits.image_shape)
    jit = True if variant.endswith("_jit") else "auto"
    result = {"variant": variant, "images": splits.num_images["train"]}
    placements = []

    class PhaseTimer(keras.callbacks.Callback):
        """Seconds inside each phase's epochs, by the `stage` in their logs."""

        def __init__(self):
            super().__init__()
            self.seconds = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            stage = str((logs or {}).get("stage", self.model.name))
            elapsed = time.perf_counter() - self.start
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed

    timer = PhaseTimer()
    compile_args = {"steps_per_execution": args.steps_per_execution}

    if variant == "greedy_recipe":
        start, cpu = time.perf_counter(), time.process_time()
        x = _decoded(splits)  # timed here, unlike plain_numpy's
        losses = []
        for level in range(1, stack.depth + 1):
            encoder, decoder = stack.encoder_levels[level - 1], stack.decoder_levels[level - 1]
            inputs = keras.Input(x.shape[1:])
            model = keras.Model(inputs, decoder(encoder(inputs)), name=f"stage_{level}")
            model.compile(optimizer="adam", loss="mse", **compile_args)
            stage = model.fit(
                x, x, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer]
            )
            losses += stage.history["loss"]
            if level < stack.depth:
                x = encoder.predict(x, batch_size=128, verbose=0)
        history = keras.callbacks.History()
        history.history = {"loss": losses}
    elif variant == "plain_numpy":
        decode_start = time.perf_counter()
        x = _decoded(splits)
        result["decode_s"] = time.perf_counter() - decode_start
        model = stack
        model.compile(optimizer="adam", loss="mse", **compile_args)
        start, cpu = time.perf_counter(), time.process_time()
        history = model.fit(
            x, x, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0
        )
        result["jit_compile"] = model.jit_compile
    elif variant.startswith("plain"):
        model = stack
        model.compile(optimizer="adam", loss="mse", jit_compile=jit, **compile_args)
        train = splits.train.map(lambda x: (x, x))
        if variant == "plain_autotune_on":
            import tensorflow as tf

            options = tf.data.Options()
            options.autotune.enabled = True
            train = train.with_options(options)
        start, cpu = time.perf_counter(), time.process_time()
        history = model.fit(train, epochs=args.epochs, verbose=0)
        result["jit_compile"] = model.jit_compile
    elif variant == "end_to_end":
        trainer = RecursiveTrainer(stack, schedule="end_to_end")
        trainer.compile(optimizer="adam", loss="mse", **compile_args)
        start, cpu = time.perf_counter(), time.process_time()
        history = trainer.fit(splits.train, epochs=args.epochs, verbose=0, callbacks=[timer])
    else:
        mode = {"greedy_uncached": "off", "greedy_disk": "disk"}.get(variant, "auto")
        dtype = "float16" if variant.endswith("_f16") else "float32"
        cache = StageInputCache(mode, dtype=dtype)
        trainer = RecursiveTrainer(stack, cache=cache)
        trainer.compile(optimizer="adam", loss="mse", jit_compile=jit, **compile_args)
        start, cpu = time.perf_counter(), time.process_time()
        history = trainer.fit(splits.train, epochs=args.epochs, verbose=0, callbacks=[timer])
        placements = [
            {"shape": p.shape, "location": p.location, "mb": p.nbytes / 2**20, "s": p.seconds}
            for p in cache.placements
        ]
    result["wall_s"] = time.perf_counter() - start
    result["cpu_s"] = time.process_time() - cpu
    result["loss"] = [float(v) for v in history.history["loss"]]
    if "stage" in history.history:
        result["stage"] = history.history["stage"]
    result["placements"] = placements
    result["phase_fit_s"] = timer.seconds
    # Table 1's metric on the first 100 images: how close float16 caching stays.
    images = splits.numpy("train", max_images=100)
    rebuilt = stack.predict(images, batch_size=args.batch_size, verbose=0)
    result["sse_per_image"] = float(np.mean(np.sum((rebuilt - images) ** 2, axis=(1, 2, 3))))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_profile(args):
    """Per-stage and full-model step times (wall ms), split into parts (TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recursive_ae.trainers.stage_models import StageModel

    keras.utils.set_random_seed(0)
    stack = _stack(args, (args.image_size, args.image_size, 3))
    batch = args.batch_size

    def parts(model, x, target_of):
        variables = model.trainable_variables
        optimizer = keras.optimizers.Adam()
        optimizer.build(variables)

        @tf.function
        def forward(x):
            return model(x, training=True)

        @tf.function
        def gradients(x):
            with tf.GradientTape() as tape:
                rebuilt, target = target_of(model(x, training=True), x)
                loss = tf.reduce_mean(tf.square(rebuilt - target))
            return tape.gradient(loss, variables)

        @tf.function
        def apply(grads):
            optimizer.apply(grads, variables)

        @tf.function
        def step(x):  # as Keras' train step: gradients and update in one graph
            with tf.GradientTape() as tape:
                rebuilt, target = target_of(model(x, training=True), x)
                loss = tf.reduce_mean(tf.square(rebuilt - target))
            optimizer.apply(tape.gradient(loss, variables), variables)

        grads = gradients(x)
        parts = (
            ("forward", forward, x),
            ("gradients", gradients, x),
            ("optimizer", apply, grads),
            ("step", step, x),
        )
        for _, fn, arg in parts:
            fn(arg)  # traced and warmed up here, not timed
        params = sum(int(np.prod(v.shape)) for v in variables)
        return params, parts

    def timed(fn, arg):
        start = time.perf_counter()
        for _ in range(5):
            out = fn(arg)
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        return (time.perf_counter() - start) / 5 * 1000

    models = []
    for level in range(1, stack.depth + 1):
        shape = stack.shapes[level - 1]
        x = tf.constant(np.random.rand(batch, *shape).astype("float32"))
        stage = StageModel(stack.encoder_levels[level - 1], stack.decoder_levels[level - 1])
        models.append((f"stage {level}", shape, *parts(stage, x, lambda out, x: out)))
    x = tf.constant(np.random.rand(batch, *stack.shapes[0]).astype("float32"))
    models.append(("full model", stack.shapes[0], *parts(stack, x, lambda o, x: (o, x))))
    # Rounds interleave the models, so a burst of load from other processes
    # hits them all alike; the fastest round of each part is kept.
    best = [{name: float("inf") for name, _, _ in p} for _, _, _, p in models]
    for _ in range(args.profile_rounds):
        for (_, _, _, p), kept in zip(models, best):
            for name, fn, arg in p:
                kept[name] = min(kept[name], timed(fn, arg))
    rows = [(n, list(s), params, t) for (n, s, params, _), t in zip(models, best)]
    print(json.dumps({"profile": rows}))


# ------------------------------------------------------------------ parent


def _spawn(args, variant):
    argv = [sys.executable, __file__, "--child", variant]
    for name in (
        "data_dir",
        "image_size",
        "images",
        "epochs",
        "base_filters",
        "batch_size",
        "steps_per_execution",
    ):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if variant == "profile":
        argv += ["--profile"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    load_before = os.getloadavg()[0]
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        return {"variant": variant, "failed": done.returncode}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load_before, os.getloadavg()[0])
    return result


# ------------------------------------------------------------------ report


def _cache_seconds(result):
    """The seconds one run's cache passes took."""
    return sum(p["s"] for p in result.get("placements") or [])


def summarize(runs):
    """The medians of each variant's runs.

    Args:
        runs: A dict from each variant to its runs' records in repeat
            order: the JSON line a child prints, or `{"variant": ...,
            "failed": returncode}` for a child that failed.

    Returns:
        A dict from each variant to its summary: `runs` (how many
        succeeded), `failed`, `walls` (every run's wall seconds in repeat
        order, `None` for a failed run) and, if any run succeeded, over the
        successful runs: the medians `wall_s`, `cpu_s`, `last_loss`,
        `sse_per_image`, `cache_s` (the cache passes' seconds) and, where
        the runs have them, `decode_s`, `fit_s` (inside the phases' `fit`),
        `rest_s` and `phase_fit_s` (a median per phase); `peak_rss_mb`, the
        largest; `placements` and `jit_compile` of the first run.
    """
    summaries = {}
    for variant, results in runs.items():
        done = [r for r in results if "wall_s" in r]
        summary = {
            "variant": variant,
            "runs": len(done),
            "failed": len(results) - len(done),
            "walls": [r.get("wall_s") for r in results],
        }
        summaries[variant] = summary
        if not done:
            continue
        median = statistics.median
        summary.update(
            wall_s=median(r["wall_s"] for r in done),
            cpu_s=median(r["cpu_s"] for r in done),
            peak_rss_mb=max(r["peak_rss_mb"] for r in done),
            last_loss=median(r["loss"][-1] for r in done),
            sse_per_image=median(r["sse_per_image"] for r in done),
            cache_s=median(_cache_seconds(r) for r in done),
            placements=done[0].get("placements") or [],
        )
        if "jit_compile" in done[0]:
            summary["jit_compile"] = done[0]["jit_compile"]
        if all("decode_s" in r for r in done):
            summary["decode_s"] = median(r["decode_s"] for r in done)
        if all(r.get("phase_fit_s") for r in done):
            fits = [sum(r["phase_fit_s"].values()) for r in done]
            rests = [r["wall_s"] - fit - _cache_seconds(r) for r, fit in zip(done, fits)]
            summary["fit_s"], summary["rest_s"] = median(fits), median(rests)
            summary["phase_fit_s"] = {
                name: median(r["phase_fit_s"].get(name, 0.0) for r in done)
                for name in done[0]["phase_fit_s"]
            }
    return summaries


def best_plain(summaries):
    """The plain Keras variant with the lowest median wall time, or `None`.

    Chosen from `PLAIN_VARIANTS` that have a successful run; on a tie, the
    first in `PLAIN_VARIANTS`.
    """
    candidates = [v for v in PLAIN_VARIANTS if "wall_s" in summaries.get(v, {})]
    if not candidates:
        return None
    return min(candidates, key=lambda v: summaries[v]["wall_s"])


def anchor_ratios(summaries):
    """Each variant's medians divided by each anchor's.

    Returns:
        A dict from each variant to a dict from `"plain_numpy"` and
        `"best plain"` to `(wall ratio, CPU ratio)`: the variant's median
        wall and CPU seconds over the anchor's (the CPU of the best plain
        pipeline by wall), or `None` where the variant or the anchor has no
        successful run.
    """
    best = best_plain(summaries)
    anchors = {NUMPY_ANCHOR: summaries.get(NUMPY_ANCHOR, {}), BEST_PLAIN: summaries.get(best, {})}
    ratios = {}
    for variant, summary in summaries.items():
        ratios[variant] = {}
        for label, anchor in anchors.items():
            if "wall_s" in summary and "wall_s" in anchor:
                ratios[variant][label] = (
                    summary["wall_s"] / anchor["wall_s"],
                    summary["cpu_s"] / anchor["cpu_s"],
                )
            else:
                ratios[variant][label] = None
    return ratios


def _caches(summary):
    """Where the caches went, and the median time of their passes."""
    placements = summary.get("placements") or []
    if not placements:
        return "-"
    where = sorted({p["location"] for p in placements})
    megabytes = max(p["mb"] for p in placements)
    return f"{'+'.join(where)}, largest {megabytes:.0f} MiB ({summary['cache_s']:.1f})"


def median_table(summaries):
    """The main table, in Markdown: one row per variant, medians over its runs."""
    ratios = anchor_ratios(summaries)
    lines = [
        f"| variant | runs | wall s | CPU s | wall / {NUMPY_ANCHOR} | wall / {BEST_PLAIN} "
        f"| CPU / {NUMPY_ANCHOR} | CPU / {BEST_PLAIN} | peak RSS MiB, max | caches (s) "
        "| last loss | SSE/image |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]

    def ratio(variant, anchor, part):
        pair = ratios[variant][anchor]
        return "n/a" if pair is None else f"{pair[part]:.3f}"

    for variant, s in summaries.items():
        runs = str(s["runs"]) if not s["failed"] else f"{s['runs']} of {s['runs'] + s['failed']}"
        if "wall_s" not in s:
            lines.append(f"| {variant} | {runs} | n/a: every run failed | | | | | | | | | |")
            continue
        lines.append(
            f"| {variant} | {runs} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} "
            f"| {ratio(variant, NUMPY_ANCHOR, 0)} | {ratio(variant, BEST_PLAIN, 0)} "
            f"| {ratio(variant, NUMPY_ANCHOR, 1)} | {ratio(variant, BEST_PLAIN, 1)} "
            f"| {s['peak_rss_mb']:.0f} | {_caches(s)} | {s['last_loss']:.5f} "
            f"| {s['sse_per_image']:.1f} |"
        )
    return "\n".join(lines)


def repeats_table(summaries):
    """Every run's wall seconds in repeat order, the median and the spread."""
    lines = [
        "| variant | wall s, each repeat | median | slowest / fastest |",
        "|---|---|---:|---:|",
    ]
    for variant, s in summaries.items():
        walls = ", ".join("failed" if w is None else f"{w:.1f}" for w in s["walls"])
        done = [w for w in s["walls"] if w is not None]
        if not done:
            lines.append(f"| {variant} | {walls} | n/a | n/a |")
            continue
        lines.append(f"| {variant} | {walls} | {s['wall_s']:.1f} | {max(done) / min(done):.3f} |")
    return "\n".join(lines)


def time_split_table(summaries):
    """Where the trainers' wall time went, medians: phases' `fit`, cache passes, the rest."""
    rows = [s for s in summaries.values() if s.get("phase_fit_s")]
    if not rows:
        return ""
    lines = [
        "| variant | wall s | inside the phases' fit s | cache passes s | rest s "
        "| fit s per phase |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in rows:
        per_phase = ", ".join(f"{name} {t:.1f}" for name, t in s["phase_fit_s"].items())
        lines.append(
            f"| {s['variant']} | {s['wall_s']:.1f} | {s['fit_s']:.1f} | {s['cache_s']:.1f} "
            f"| {s['rest_s']:.1f} | {per_phase} |"
        )
    return "\n".join(lines)


def _print_profile(profile):
    print()
    print(
        "| model | input | trainable params | forward ms | gradients ms | optimizer ms | step ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    total = 0.0
    for name, shape, params, t in profile:
        if name.startswith("stage"):
            total += t["step"]
        print(
            f"| {name} | {tuple(shape)} | {params:,} | {t['forward']:.1f} | "
            f"{t['gradients']:.1f} | {t['optimizer']:.1f} | {t['step']:.1f} |"
        )
    print(f"| sum of the stages' steps | | | | | | {total:.1f} |")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_profile(args) if args.profile else run_child(args)
    print(f"# bench_training {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {machine()}")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(
        f"# data: {args.images or 'all'} LFW images at {args.image_size}x{args.image_size}, batch "
        f"{args.batch_size}; MirroredConvStack.paper(base_filters={args.base_filters}); "
        f"E={args.epochs}; steps_per_execution={args.steps_per_execution}"
    )
    if args.profile:
        result = _spawn(args, "profile")
        if "profile" in result:
            _print_profile(result["profile"])
        return
    variants = variant_list(args.variants, args.jit)
    runs = {variant: [] for variant in variants}
    for repeat in range(args.repeats):
        # Each repeat starts one variant later, so that no variant always
        # runs first (or last) while the machine's speed drifts.
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            result = _spawn(args, variant)
            print(f"# {json.dumps(result)}", flush=True)
            runs[variant].append(result)
    summaries = summarize(runs)
    best = best_plain(summaries)
    print()
    print(f"# {args.repeats} interleaved repeats; medians over each variant's successful runs,")
    print("# peak RSS the largest over them; ratios are of the medians.")
    numpy_anchor = summaries[NUMPY_ANCHOR]
    if "wall_s" in numpy_anchor:
        print(
            f"# {NUMPY_ANCHOR}: median {numpy_anchor['wall_s']:.1f} s; it decoded the faces "
            f"into an array in {numpy_anchor['decode_s']:.1f} s (median), outside its timing"
        )
    if best is not None:
        wall = summaries[best]["wall_s"]
        print(f"# best plain pipeline (lowest median wall): {best}, {wall:.1f} s")
    if "jit_compile" in summaries["plain"]:
        print(f"# plain Keras resolved jit_compile='auto' to {summaries['plain']['jit_compile']!r}")
    print()
    print(median_table(summaries))
    print()
    print(repeats_table(summaries))
    split = time_split_table(summaries)
    if split:
        print()
        print(split)
    if "wall_s" not in numpy_anchor or best is None:
        raise SystemExit("Every run of an anchor failed, so its ratios are n/a; see above.")


if __name__ == "__main__":
    main()
