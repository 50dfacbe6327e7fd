"""Time and memory of recursive training against plain Keras, on real LFW faces.

One invocation runs every variant on the same data (LFW JPEG files decoded
by `keras_recursive_ae.lfw.load_lfw`'s `tf.data` pipeline, as a user would
feed them) and the same architecture (`MirroredConvStack.paper()`), each in
a child process of its own so that peak memory is measured separately, and
prints one table:

1. `plain`: Keras' `Model.fit` of the stacked autoencoder, E epochs: the
   anchor every ratio divides by. `load_lfw`'s pipeline runs with `tf.data`
   autotuning off; `plain_autotune_on` switches it back on, for contrast
   (with it, training sometimes sat idle for tens of seconds; see
   docs/performance.md).
2. `end_to_end`: `RecursiveTrainer(schedule="end_to_end")`, E epochs.
3. `greedy_cached`: `RecursiveTrainer`, greedy, E epochs per stage, stage
   inputs cached (`cache="auto"`), each stage's input computed from the
   previous stage's.
   `greedy_cached_f16`: the same with `cache_dtype="float16"`;
   `greedy_disk`: the same with `cache="disk"` (every cache in a file).
4. `greedy_uncached`: the same with `cache="off"` (every step runs the
   frozen levels again), for contrast.
5. `greedy_recipe`: the same greedy schedule as people write it with plain
   Keras, without this library: decode the images into one NumPy array,
   then for each level `fit` a model of that level's encoder and decoder on
   the array (`fit(x, x, shuffle=True)`) and `predict` the next level's
   input with its encoder. The reference for what the library adds.

Each row gives the wall-clock and CPU seconds of the `fit` call (tracing,
cache passes and JPEG decoding included; imports, model building excluded),
their ratios to `plain`, the peak resident memory of the child process
(`ru_maxrss`), and the last epoch's training loss.

Usage (from the repository root):

```
python benchmarks/bench_training.py                      # 128x128, defaults
python benchmarks/bench_training.py --image-size 32 --images 256   # quick
python benchmarks/bench_training.py --jit                # + XLA rows
python benchmarks/bench_training.py --profile            # where a step's time goes
```
"""

import argparse
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO_ROOT.parent / "shared" / "data" / "lfw"

VARIANTS = (
    "plain",
    "plain_autotune_on",
    "end_to_end",
    "greedy_cached",
    "greedy_cached_f16",
    "greedy_disk",
    "greedy_uncached",
    "greedy_recipe",
)
JIT_VARIANTS = ("plain_jit", "greedy_cached_jit")


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
        default=",".join(VARIANTS),
        help=f"comma-separated, from {VARIANTS + JIT_VARIANTS}",
    )
    parser.add_argument(
        "--jit", action="store_true", help="also run plain Keras and greedy with jit_compile=True"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each variant, each repeat in an order rotated by one "
        "(the fastest is reported)",
    )
    parser.add_argument("--profile", action="store_true", help="print a per-stage step profile")
    parser.add_argument("--profile-rounds", type=int, default=7, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- children


def _data(args):
    from keras_recursive_ae.lfw import load_lfw

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


def _stack(args, image_shape):
    from keras_recursive_ae import MirroredConvStack

    return MirroredConvStack.paper(input_shape=image_shape, base_filters=args.base_filters)


def run_child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from keras_recursive_ae import RecursiveTrainer
    from keras_recursive_ae.stage_inputs import StageInputCache

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
        x = np.concatenate([np.asarray(batch) for batch in splits.train])
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
    elif variant.startswith("plain"):
        model = stack.model
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
    rebuilt = stack.model.predict(images, batch_size=args.batch_size, verbose=0)
    result["sse_per_image"] = float(np.mean(np.sum((rebuilt - images) ** 2, axis=(1, 2, 3))))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_profile(args):
    """Per-stage and full-model step times (wall ms), split into parts (TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recursive_ae.stage import StageModel

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
    models.append(("full model", stack.shapes[0], *parts(stack.model, x, lambda o, x: (o, x))))
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


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()}"


def _print_table(results, anchor):
    print()
    print(
        "| variant | wall s | CPU s | wall / plain | CPU / plain | peak RSS MiB "
        "| caches (s) | last loss | SSE/image | load (before, after) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for r in results:
        if "failed" in r:
            print(f"| {r['variant']} | n/a: child failed ({r['failed']}) | | | | | | | | |")
            continue
        print(
            f"| {r['variant']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {r['wall_s'] / anchor['wall_s']:.3f} | {r['cpu_s'] / anchor['cpu_s']:.3f} "
            f"| {r['peak_rss_mb']:.0f} | {_caches(r)} | {r['loss'][-1]:.5f} "
            f"| {r['sse_per_image']:.1f} "
            f"| {r['load'][0]:.2f}, {r['load'][1]:.2f} |"
        )


def _print_repeats(runs):
    """Every run's wall time, in the order of the repeats, and the means."""
    means = {}
    for variant, results in runs.items():
        walls = [r["wall_s"] for r in results if "wall_s" in r]
        means[variant] = sum(walls) / len(walls) if walls else None
    print()
    print("| variant | wall s, each repeat | mean | mean / plain's mean |")
    print("|---|---|---:|---:|")
    for variant, results in runs.items():
        walls = ", ".join(f"{r['wall_s']:.1f}" if "wall_s" in r else "failed" for r in results)
        if means[variant] is None or means["plain"] is None:
            print(f"| {variant} | {walls} | n/a | n/a |")
            continue
        print(
            f"| {variant} | {walls} | {means[variant]:.1f} "
            f"| {means[variant] / means['plain']:.3f} |"
        )


def _caches(result):
    """Where the caches went, and the time their passes took."""
    placements = result.get("placements") or []
    if not placements:
        return "-"
    where = sorted({p["location"] for p in placements})
    megabytes = max(p["mb"] for p in placements)
    seconds = sum(p["s"] for p in placements)
    return f"{'+'.join(where)}, largest {megabytes:.0f} MiB ({seconds:.1f})"


def _print_time_split(results):
    """Where each trainer variant's wall time went: phases' `fit`, cache passes, the rest."""
    rows = [r for r in results if r.get("phase_fit_s")]
    if not rows:
        return
    print()
    print(
        "| variant | wall s | inside the phases' fit s | cache passes s | rest s "
        "| fit s per phase |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        fits = r["phase_fit_s"]
        caches = sum(p["s"] for p in r.get("placements") or [])
        rest = r["wall_s"] - sum(fits.values()) - caches
        per_phase = ", ".join(f"{name} {s:.1f}" for name, s in fits.items())
        print(
            f"| {r['variant']} | {r['wall_s']:.1f} | {sum(fits.values()):.1f} | {caches:.1f} "
            f"| {rest:.1f} | {per_phase} |"
        )


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
    print(f"# machine: {_machine()}")
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
    variants = [v for v in args.variants.split(",") if v]
    if args.jit:
        variants += [v for v in JIT_VARIANTS if v not in variants]
    unknown = [v for v in variants if v not in VARIANTS + JIT_VARIANTS]
    if unknown:
        raise SystemExit(f"Unknown variants: {unknown}")
    if "plain" not in variants:
        variants.insert(0, "plain")
    runs = {variant: [] for variant in variants}
    for repeat in range(args.repeats):
        # Each repeat starts one variant later, so that no variant always
        # runs first (or last) while the machine's speed drifts.
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            result = _spawn(args, variant)
            print(f"# {json.dumps(result)}", flush=True)
            runs[variant].append(result)
    best = {v: min(rs, key=lambda r: r.get("wall_s", math.inf)) for v, rs in runs.items()}
    results = [best[v] for v in variants]
    anchor = best["plain"]
    if "wall_s" not in anchor:
        raise SystemExit("The plain Keras anchor failed; see above.")
    print(f"\nplain Keras resolved jit_compile='auto' to {anchor.get('jit_compile')!r}")
    _print_table(results, anchor)
    if args.repeats > 1:
        _print_repeats(runs)
    _print_time_split(results)


if __name__ == "__main__":
    main()
