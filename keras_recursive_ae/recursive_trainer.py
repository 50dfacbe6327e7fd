"""Recursive (greedy, layer-wise) training of a symmetric autoencoder."""

import contextlib
import dataclasses
import functools
import math

import keras
import numpy as np

from keras_recursive_ae import distribution as distribution_lib
from keras_recursive_ae.checkpoint import SeededBatches, TrainingCheckpoint, model_fingerprint
from keras_recursive_ae.stage import JointModel, StageModel, StageProgbarLogger
from keras_recursive_ae.stage_inputs import (
    StageBatches,
    StageInputCache,
    as_tf_dataset,
    check_finite,
    check_images,
    dataset_batch_size,
    image_batch_shape,
    is_dataset,
)
from keras_recursive_ae.symmetric_autoencoder import SymmetricAutoencoder

SCHEDULES = ("greedy", "joint", "end_to_end")


@dataclasses.dataclass(frozen=True)
class _Phase:
    """One `fit` of the schedule: a greedy stage, or a pass over all levels."""

    stage: object  # the history's label: a level (1 = outermost) or a name
    label: str  # the progress bars' label
    epochs: int

    @property
    def level(self):
        return self.stage if isinstance(self.stage, int) else None


class RecursiveTrainer:
    """Trains a symmetric autoencoder one level at a time, outermost first.

    This is the training of Ray & Hannon, "Recursively Trained Autoencoders"
    (2022). Stage `k` builds the small model `T_{k-1} -> E_k -> D_k` and
    trains it to rebuild `T_{k-1}`, with `E_1..E_{k-1}` frozen (their batch
    norms in inference mode) and `D_1..D_{k-1}` and the deeper levels not
    part of the stage at all. Every stage compiles its own model, so freezing
    is real on every backend. After the last stage the levels form the full
    autoencoder, `trainer.model`, with no end-to-end pass unless
    `fit(..., fine_tune_epochs=N)` asks for one.

    The levels come from a `MirroredConvStack` (or any
    `SymmetricAutoencoder`), or from your own encoder and decoder:

    - `encoder`: a `keras.Sequential` (or a list) whose layers are the
      levels, outermost first. A level with several layers is itself a
      `Sequential` or a functional model.
    - `decoder`: the same, written the way the decoder runs: innermost level
      first, the level that produces the image last
      (`decoder_order="innermost_first"`, the default), or the reverse
      (`decoder_order="outermost_first"`).

    Every decoder level must map the shape of `T_k` back to the shape of
    `T_{k-1}`; this is checked before any training.

    Schedules, all with the same `compile`/`fit`, validation, callbacks,
    progress bars and stage-labelled history:

    - `"greedy"` (default): the paper's one stage per level.
    - `"joint"`: one model, all levels at once; the loss is
      `sum_k level_weights[k-1] * loss(R_{k-1}, T_{k-1})`, where `R_{k-1}`
      is the decoder's tensor at level `k-1` of the full autoencoder (`R_0`
      the reconstructed image, `T_0` the image). Per-level losses are
      reported as `level_k_loss`.
    - `"end_to_end"`: the conventional stacked autoencoder, image loss
      only: the baseline.

    Args:
        encoder: a `SymmetricAutoencoder` (e.g. `MirroredConvStack`), or the
            encoder levels as a `keras.Sequential` or a list of blocks.
        decoder: the decoder levels (a `keras.Sequential` or a list), or
            `None` when `encoder` is a `SymmetricAutoencoder`.
        input_shape: shape of one image, e.g. `(128, 128, 3)`. Optional when
            the encoder has an `Input` or the pair is a `SymmetricAutoencoder`;
            otherwise it is taken from the data at the first `fit`.
        decoder_order: `"innermost_first"` (default) or `"outermost_first"`.
        schedule: `"greedy"` (default), `"joint"` or `"end_to_end"`.
        level_weights: for `"joint"`, one non-negative weight per level,
            outermost first. Defaults to `1.0` for every level (the image
            term and every inner term count the same). A zero removes that
            level's term.
        stop_target_gradients: for `"joint"`, whether the encoder targets
            `T_1..T_{n-1}` are held constant (default `True`): the encoder
            then learns only through the reconstruction paths and cannot
            lower the inner losses by shrinking its own tensors.
        cache: where each greedy stage's input `T_{k-1}` (computed once by
            the frozen encoder levels) is kept: `"auto"` (default: in memory
            when it fits `cache_budget`, in a temporary file otherwise),
            `"memory"`, `"disk"`, or `"off"` (the frozen levels recompute
            `T_{k-1}` at every step: slower, no extra memory). A
            `StageInputCache` instance is accepted too.
        cache_budget: bytes the cached stage inputs may take in memory at
            once in `"auto"` mode; `None` (default) keeps a cache in memory
            when it takes at most a third of the memory available then.
        cache_dtype: `"float32"` (default) or `"float16"` (half the memory;
            see docs/performance.md for the precision it costs).
        cache_dir: folder for cache files; `None` (default) uses the
            system's temporary folder (`TMPDIR`). Files are removed after
            each stage, also when training raises.

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    images = np.random.rand(64, 32, 32, 3).astype("float32")
    stack = MirroredConvStack(filters=(8, 16), input_shape=(32, 32, 3))
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer="adam", loss="mse")
    history = trainer.fit(images, epochs=2, batch_size=16, verbose=0)
    history.history["stage"]        # [1, 1, 2, 2]
    trainer.model.predict(images[:4], verbose=0).shape   # (4, 32, 32, 3)
    ```
    """

    def __init__(
        self,
        encoder,
        decoder=None,
        *,
        input_shape=None,
        decoder_order="innermost_first",
        schedule="greedy",
        level_weights=None,
        stop_target_gradients=True,
        cache="auto",
        cache_budget=None,
        cache_dtype="float32",
        cache_dir=None,
    ):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"Invalid value for argument `schedule`. Expected one of "
                f"{SCHEDULES}. Received: schedule={schedule!r}"
            )
        # Stages are created long after the model: remember its distribution.
        self._distribution = distribution_lib.capture()
        self.schedule = schedule
        self.stop_target_gradients = bool(stop_target_gradients)
        self._level_weights = level_weights
        if isinstance(cache, StageInputCache):
            if (cache_budget, cache_dtype, cache_dir) != (None, "float32", None):
                raise ValueError(
                    "Give the cache options to the StageInputCache passed as "
                    f"`cache`, not to the trainer. Received: cache_budget={cache_budget!r}, "
                    f"cache_dtype={cache_dtype!r}, cache_dir={cache_dir!r}"
                )
            self._cache = cache
        else:
            self._cache = StageInputCache(
                cache, budget=cache_budget, dtype=cache_dtype, directory=cache_dir
            )
        self._compile_args = None
        self._autoencoder = None
        if isinstance(encoder, SymmetricAutoencoder):
            if decoder is not None:
                raise ValueError(
                    "Pass either a SymmetricAutoencoder (e.g. a "
                    "MirroredConvStack) or an encoder and a decoder, not both. "
                    f"Received: encoder={encoder.name!r}, decoder={decoder!r}"
                )
            self._set_autoencoder(encoder)
            return
        self._encoder_blocks = _levels_of(encoder, "encoder")
        self._decoder_blocks = _levels_of(decoder, "decoder")
        self._decoder_order = decoder_order
        input_shape = input_shape or _declared_input_shape(encoder)
        if input_shape is not None:
            self._build(input_shape)
        elif len(self._encoder_blocks) != len(self._decoder_blocks):
            self._build(None)  # raises the depth mismatch before any data

    def _build(self, input_shape):
        self._set_autoencoder(
            SymmetricAutoencoder(
                self._encoder_blocks,
                self._decoder_blocks,
                input_shape=input_shape,
                decoder_order=self._decoder_order,
                name="recursive_autoencoder",
            )
        )

    def _set_autoencoder(self, autoencoder):
        self._autoencoder = autoencoder
        self.level_weights = _standardize_level_weights(self._level_weights, autoencoder.depth)

    @property
    def autoencoder(self):
        """The `SymmetricAutoencoder` being trained: levels, shapes, views."""
        if self._autoencoder is None:
            raise ValueError(
                "The trainer does not know the input shape yet: pass "
                "`input_shape=` to `RecursiveTrainer`, give the encoder a "
                "`keras.Input`, or call `fit` first."
            )
        return self._autoencoder

    @property
    def model(self):
        """The full autoencoder, a plain Keras functional model."""
        return self.autoencoder.model

    @property
    def encoder(self):
        """The encoder, images -> `T_n`, a plain Keras functional model."""
        return self.autoencoder.encoder

    @property
    def decoder(self):
        """The decoder, `T_n` -> images, a plain Keras functional model."""
        return self.autoencoder.decoder

    @property
    def depth(self):
        """The number of levels `n`."""
        return self.autoencoder.depth

    def compile(self, optimizer="adam", loss="mse", metrics=None, **kwargs):
        """Configures the training of every phase, as `keras.Model.compile` does.

        Each phase (each greedy stage, the fine-tuning pass) compiles its
        own model with a fresh copy of `optimizer` (and of the metrics), so
        no optimizer state leaks from one level to the next.

        Args:
            optimizer: name or `keras.optimizers.Optimizer` instance.
            loss: reconstruction loss between a model's output and its
                target (`T_{k-1}` for a greedy stage, the image otherwise),
                e.g. `"mse"` (default). For `"joint"`, the loss of every
                level.
            metrics: list of metrics, computed on the same pair (for
                `"joint"`: on the image).
            **kwargs: any other `keras.Model.compile` argument
                (`jit_compile`, `steps_per_execution`, ...).
        """
        keras.optimizers.get(optimizer)  # fails now on an unknown optimizer
        keras.losses.get(loss)
        self._compile_args = {"optimizer": optimizer, "loss": loss, "metrics": metrics, **kwargs}

    def fit(
        self,
        x,
        epochs=1,
        batch_size=None,
        validation_data=None,
        callbacks=None,
        verbose="auto",
        shuffle=True,
        fine_tune_epochs=0,
        checkpoint_dir=None,
        **kwargs,
    ):
        """Trains the autoencoder with the trainer's schedule.

        Args:
            x: images as a NumPy array `(N, height, width, channels)` or a
                batched `tf.data.Dataset` yielding images (or `(images, _)`
                pairs, whose second element is ignored).
            epochs: for `"greedy"`, epochs of every stage, or a list with one
                count per level, outermost first (`0` skips a level); for
                the other schedules, the number of epochs.
            batch_size: as in `keras.Model.fit` (not for datasets).
            validation_data: held-out images, in the same forms as `x` (a
                `(images, _)` tuple is accepted too). Each phase reports its
                loss on them as `val_loss`.
            callbacks: Keras callbacks, passed to every phase's `fit` (their
                `model` is the phase's model).
            verbose: as in `keras.Model.fit`; progress bars are labelled
                with the phase, e.g. `"Stage 2/7 - Epoch 1/3"`.
            shuffle: as in `keras.Model.fit`.
            fine_tune_epochs: for `"greedy"`, epochs of an end-to-end pass
                over the assembled autoencoder, everything unfrozen, after
                the last stage. Defaults to `0` (the paper: none).
            checkpoint_dir: optional folder where the run's whole state is
                saved after every epoch. Calling `fit` again with the same
                arguments and folder (e.g. after the process was killed)
                resumes in the phase and epoch where it stopped; a finished
                run is not trained again. With a checkpoint folder, NumPy
                inputs and cached stage inputs (a `tf.data` input is cached
                too) are shuffled in an order fixed by the seed and the
                epoch, so a resumed run ends with the same weights as an
                uninterrupted one (bit for bit on the CPU, after
                `keras.utils.set_random_seed`). With `cache="off"` a
                `tf.data` input keeps its own order.
            **kwargs: any other `keras.Model.fit` argument.

        Returns:
            A `keras.callbacks.History` over all phases: `history.history`
            holds every metric per epoch and `history.history["stage"]` the
            phase each epoch belongs to: the level (1 = outermost) of a
            greedy stage, or `"fine_tune"`, `"joint"`, `"end_to_end"`.
        """
        if self._compile_args is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        # Every stage is built, compiled and trained in the distribution
        # (tf.distribute strategy, keras.distribution) the trainer was created in.
        with distribution_lib.stage_scope(self._distribution):
            return self._fit(
                x, epochs, batch_size, validation_data, callbacks, verbose, shuffle,
                fine_tune_epochs, checkpoint_dir, **kwargs
            )

    def _fit(self, x, epochs, batch_size, validation_data, callbacks, verbose, shuffle,
             fine_tune_epochs, checkpoint_dir, **kwargs):
        if self._autoencoder is None:
            self._build(image_batch_shape(x, "x")[1:])
        autoencoder = self.autoencoder
        distribution_lib.check_weights(self._distribution, autoencoder.model)
        phases = self._phases(epochs, fine_tune_epochs)
        check_images(x, "x", autoencoder.input_shape)
        if isinstance(validation_data, (tuple, list)):
            validation_data = validation_data[0]
        if validation_data is not None:
            check_images(validation_data, "validation_data", autoencoder.input_shape)
        check_finite(x, "x")
        if validation_data is not None:
            check_finite(validation_data, "validation_data")
        if batch_size is None and is_dataset(x):
            cache_batch_size = dataset_batch_size(x)
        else:
            cache_batch_size = batch_size or 32
        callbacks = list(callbacks or [])
        progress = verbose != 0 and not any(
            isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks
        )

        run = _Run(autoencoder.model, phases, checkpoint_dir, self.schedule)
        # Stage k+1 computes its input from stage k's cache, written over it.
        largest_row = max(autoencoder.shapes[: self.depth], key=math.prod)
        with self._cache.run(largest_row):
            self._fit_phases(run, phases, x, validation_data, batch_size, cache_batch_size,
                             callbacks, progress, verbose, shuffle, **kwargs)
        return run.history

    def _fit_phases(self, run, phases, x, validation_data, batch_size, cache_batch_size,
                    callbacks, progress, verbose, shuffle, **kwargs):
        for index, phase in enumerate(phases):
            if index < run.phase or phase.epochs == 0:
                continue
            run.start(index)
            if verbose != 0:
                print(f"{phase.label}: {self._describe(phase)}", flush=True)
            self._fit_phase(
                phase,
                run,
                x,
                validation_data,
                batch_size=batch_size,
                cache_batch_size=cache_batch_size,
                callbacks=callbacks + ([StageProgbarLogger(phase.label)] if progress else []),
                verbose=verbose,
                shuffle=shuffle,
                **kwargs,
            )
            run.finish_phase(index + 1)

    def generate(self, num_images, seed=None):
        """Decodes codes drawn from N(0, I) into images.

        Meaningful for a variational innermost level (e.g.
        `MirroredConvStack(..., variational=True)`), whose codes are trained
        towards N(0, I).

        Args:
            num_images: how many images to generate.
            seed: optional integer; the same seed gives the same images.

        Returns:
            A NumPy array of `num_images` images, in the decoder's output
            range (`[0, 1]` for a sigmoid output).
        """
        if not isinstance(num_images, int) or isinstance(num_images, bool) or num_images <= 0:
            raise ValueError(
                "Invalid value for argument `num_images`. Expected a strictly "
                f"positive integer. Received: num_images={num_images!r}"
            )
        code_shape = self.autoencoder.shapes[-1]
        codes = keras.random.normal((num_images,) + tuple(code_shape), seed=seed)
        return self.decoder.predict(codes, verbose=0)

    def _phases(self, epochs, fine_tune_epochs):
        if self.schedule == "greedy":
            per_level = _epochs_per_level(epochs, self.depth)
            phases = [
                _Phase(level, f"Stage {level}/{self.depth}", count)
                for level, count in enumerate(per_level, start=1)
            ]
            _check_epochs(fine_tune_epochs, "fine_tune_epochs")
            if fine_tune_epochs:
                phases.append(_Phase("fine_tune", "Fine-tuning", fine_tune_epochs))
            return phases
        _check_epochs(epochs, "epochs")
        if fine_tune_epochs:
            raise ValueError(
                "`fine_tune_epochs` follows a greedy schedule; the "
                f"{self.schedule!r} schedule already trains every level at once. "
                f"Received: fine_tune_epochs={fine_tune_epochs!r}"
            )
        label = "Joint training" if self.schedule == "joint" else "End-to-end training"
        return [_Phase(self.schedule, label, epochs)]

    def _describe(self, phase):
        shapes = self.autoencoder.shapes
        if phase.level is None:
            return f"all {self.depth} levels, images {shapes[0]}"
        level = phase.level
        return (
            f"encoder and decoder level {level}, rebuilding T_{level - 1} "
            f"{shapes[level - 1]} from T_{level} {shapes[level]}"
        )

    def _phase_model(self, phase, prefix):
        autoencoder = self.autoencoder
        if phase.level is not None:
            return StageModel(
                autoencoder.encoder_levels[phase.level - 1],
                autoencoder.decoder_levels[phase.level - 1],
                prefix=prefix if self._cache.recomputes else None,
                name=f"stage_{phase.level}",
            )
        if phase.stage == "joint":
            return JointModel(autoencoder, self.level_weights, self.stop_target_gradients)
        return StageModel(autoencoder.encoder, autoencoder.decoder, name=str(phase.stage))

    def _fit_phase(self, phase, run, x, validation_data, batch_size, cache_batch_size, **fit_args):
        autoencoder = self.autoencoder
        level = phase.level or 1
        frozen = [
            layer for earlier in range(1, level) for layer in autoencoder.encoder_level_layers(earlier)
        ]
        prefix = autoencoder.encoder_prefix(level - 1) if level > 1 else None
        # Greedy stages read the images again (stage 2 computes its input
        # from them): decode a dataset once. One joint or end-to-end phase
        # would only pay for an extra pass.
        inputs = functools.partial(self._cache.inputs, cache_images=self.schedule == "greedy")
        validation_inputs = contextlib.nullcontext(None)
        if validation_data is not None:
            validation_inputs = inputs(prefix, validation_data, cache_batch_size)
        with (
            _frozen(frozen),
            inputs(prefix, x, cache_batch_size) as data,
            validation_inputs as val,
        ):
            model = self._phase_model(phase, prefix)
            model.compile(**_fresh_compile_args(self._compile_args))
            if not model.optimizer.built:
                # Built here rather than inside the first traced step, where
                # TensorFlow would then trace the step a second time.
                model.optimizer.build(model.trainable_variables)
            initial_epoch = run.restore(model)
            if is_dataset(data):
                # Datasets come batched and shuffled by their own pipeline.
                batch_size, fit_args["shuffle"] = None, False
            elif isinstance(data, StageBatches) and batch_size is None:
                batch_size = data.batch_size
            elif batch_size is None:
                batch_size = cache_batch_size
            distributed = self._distribution is not None
            in_memory = isinstance(data, StageBatches) and data.location == "memory"
            if distributed and in_memory and not run.resumable:
                # An array: strategies shard it (a PyDataset is not sharded).
                data = data.read(slice(0, data.num_samples))
            if not is_dataset(data) and (
                not distributed or run.resumable or isinstance(data, StageBatches)
            ):
                # Arrays and caches are read in a seeded order, the same in a
                # resumed run, rather than through Keras' array pipeline,
                # which copies the data and is slower per step.
                data = SeededBatches(
                    data,
                    batch_size,
                    seed=run.seed(),
                    shuffle=fit_args.pop("shuffle"),
                    first_epoch=initial_epoch,
                    epochs=phase.epochs,
                )
                # The batches are in their seeded order; Keras must not reorder them.
                fit_args["shuffle"], fit_args["steps_per_epoch"] = False, data.batches_per_epoch
                batch_size = None
                if not distributed and keras.backend.backend() == "tensorflow":
                    data = as_tf_dataset(data)
            fit_args["callbacks"] = (
                [_StopOnNonFiniteLoss(phase.label)] + fit_args["callbacks"] + [run.recorder(phase, model)]
            )
            before = autoencoder.model.get_weights()
            try:
                model.fit(
                    data,
                    validation_data=val,
                    batch_size=batch_size,
                    epochs=phase.epochs,
                    initial_epoch=initial_epoch,
                    **fit_args,
                )
            except BaseException:
                # A failed phase leaves no half-trained weights behind; the
                # phases before it keep theirs.
                autoencoder.model.set_weights(before)
                raise


class _Run:
    """The history of one `fit` over all phases, and its checkpoint, if any."""

    def __init__(self, model, phases, checkpoint_dir, schedule):
        self.model = model
        self.history = keras.callbacks.History()
        self.history.set_model(model)
        self.history.epoch, self.history.history = [], {}
        self.phase, self.epochs_done = 0, 0
        self.checkpoint = None
        self._state = None
        # Drawn from NumPy's global generator, so `keras.utils.set_random_seed`
        # fixes it; a resumed run reads it back from its checkpoint.
        self.shuffle_seed = int(np.random.randint(2**31 - 1))
        if checkpoint_dir is None:
            return
        self.checkpoint = TrainingCheckpoint(
            checkpoint_dir,
            {
                "schedule": schedule,
                "phases": [[str(p.stage), p.epochs] for p in phases],
                "variables": model_fingerprint(model.variables),
            },
        )
        state = self.checkpoint.load()
        if state is None:
            return
        self._state = state
        self.shuffle_seed = state["shuffle_seed"]
        self.phase, self.epochs_done = state["phase"], state["epochs_done"]
        self.history.history = {
            key: [math.nan if v is None else v for v in values]
            for key, values in state["history"].items()
        }
        self.history.epoch = list(range(state["epoch_count"]))
        self.checkpoint.restore(state, model.variables)

    @property
    def resumable(self):
        return self.checkpoint is not None

    def start(self, phase_index):
        if phase_index != self.phase:
            self.phase, self.epochs_done = phase_index, 0

    def seed(self):
        """The shuffling seed of the running phase."""
        return [self.shuffle_seed, self.phase]

    def restore(self, phase_model):
        """Restores the optimizer of a phase stopped mid-way; its first epoch."""
        if self.checkpoint is None or self._state is None or self.epochs_done == 0:
            return 0
        self.checkpoint.restore(self._state, self.model.variables, phase_model.optimizer.variables)
        return self.epochs_done

    def recorder(self, phase, phase_model):
        return _EpochRecorder(self, phase, phase_model)

    def record(self, phase, logs, phase_model):
        history = self.history
        done = len(history.epoch)
        logs = dict(logs or {}, stage=phase.stage)
        for key in list(history.history) + [k for k in logs if k not in history.history]:
            history.history.setdefault(key, [math.nan] * done).append(logs.get(key, math.nan))
        history.epoch.append(done)
        self.epochs_done += 1
        if self.checkpoint is not None:
            self._save(phase_model.optimizer.variables)

    def finish_phase(self, next_phase):
        self.phase, self.epochs_done = next_phase, 0
        if self.checkpoint is not None:
            self._save([])

    def _save(self, optimizer_variables):
        state = {
            "phase": self.phase,
            "epochs_done": self.epochs_done,
            "epoch_count": len(self.history.epoch),
            "history": self.history.history,
            "shuffle_seed": self.shuffle_seed,
        }
        try:
            self.checkpoint.save(state, self.model.variables, optimizer_variables)
        except OSError as error:
            raise OSError(
                error.errno,
                f"Could not write the checkpoint in {self.checkpoint.directory} "
                f"({error.strerror or error}); the previous checkpoint there is intact.",
            ) from error
        self._state = None  # what is in memory is now newer than any checkpoint


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops the run, naming the phase, when an epoch's loss is NaN or infinite."""

    def __init__(self, label):
        super().__init__()
        self.label = label

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"{self.label} diverged: its loss was {float(loss)} in epoch "
                f"{epoch + 1}. Its weights were put back as they were before it "
                "started; the phases before it keep theirs. Lower the learning "
                "rate, or look for NaN or infinite values in the data."
            )


class _EpochRecorder(keras.callbacks.Callback):
    """Appends each epoch to the run's history, then checkpoints the run."""

    def __init__(self, run, phase, phase_model):
        super().__init__()
        self.run, self.phase, self.phase_model = run, phase, phase_model

    def on_epoch_end(self, epoch, logs=None):
        self.run.record(self.phase, logs, self.phase_model)


@contextlib.contextmanager
def _frozen(layers):
    """Freezes `layers` for a stage; their flags are restored even on error."""
    saved = [(layer, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.trainable = False
        yield
    finally:
        # Parents come before their sublayers, so each flag ends as it was.
        for layer, trainable in saved:
            layer.trainable = trainable


def _fresh_compile_args(compile_args):
    """A copy of the compile arguments with new optimizer and metric states."""
    args = dict(compile_args)
    args["optimizer"] = _fresh(args["optimizer"])
    if args.get("metrics") is not None:
        args["metrics"] = [_fresh(metric) for metric in args["metrics"]]
    return args


def _fresh(obj):
    if isinstance(obj, str) or obj is None or (callable(obj) and not hasattr(obj, "get_config")):
        return obj
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))


def _levels_of(model, argument):
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if isinstance(model, (list, tuple)):
        return list(model)
    raise TypeError(
        f"Expected `{argument}` to be a keras.Sequential or a list of blocks "
        "(one per level), or `encoder` to be a SymmetricAutoencoder such as a "
        f"MirroredConvStack. Received: {argument} of type {type(model).__name__}"
    )


def _declared_input_shape(encoder):
    if isinstance(encoder, keras.Sequential):
        try:
            return tuple(encoder.input_shape[1:])
        except (AttributeError, ValueError):
            return None
    return None


def _epochs_per_level(epochs, depth):
    def valid(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if valid(epochs):
        return [epochs] * depth
    if isinstance(epochs, (list, tuple)) and len(epochs) == depth and all(map(valid, epochs)):
        return list(epochs)
    raise ValueError(
        "Invalid value for argument `epochs`. Expected a non-negative integer "
        f"or a list of {depth} of them (one per level, outermost first). "
        f"Received: epochs={epochs!r}"
    )


def _check_epochs(value, argument):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a non-negative "
            f"integer. Received: {argument}={value!r}"
        )


def _standardize_level_weights(level_weights, depth):
    if level_weights is None:
        return [1.0] * depth
    weights = list(level_weights) if isinstance(level_weights, (list, tuple)) else None
    if (
        weights is None
        or len(weights) != depth
        or any(not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0 for w in weights)
        or not any(weights)
    ):
        raise ValueError(
            "Invalid value for argument `level_weights`. Expected "
            f"{depth} non-negative numbers (one per level, outermost first), "
            f"not all zero. Received: level_weights={level_weights!r}"
        )
    return [float(w) for w in weights]
