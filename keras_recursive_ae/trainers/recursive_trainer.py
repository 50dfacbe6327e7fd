"""Recursive (greedy, layer-wise) training of a symmetric autoencoder."""

import contextlib
import warnings

import keras

from keras_recursive_ae import generation
from keras_recursive_ae.models.levels import (
    GreedyTrainingWarning,
    inner_loss_warning,
    levels_of,
    warn_before_greedy,
)
from keras_recursive_ae.models.symmetric_autoencoder import DECODER_ORDERS, SymmetricAutoencoder
from keras_recursive_ae.trainers import distribution as distribution_lib
from keras_recursive_ae.trainers import phase as phase_lib
from keras_recursive_ae.trainers.phase import Phase
from keras_recursive_ae.trainers.stage_input_cache import StageInputCache
from keras_recursive_ae.trainers.stage_models import JointModel, StageModel, TrainingOnly
from keras_recursive_ae.trainers.training_data import TrainingData
from keras_recursive_ae.trainers.training_run import TrainingRun
from keras_recursive_ae.utils.arguments import (
    check_choice,
    check_int,
    epochs_per_level,
    standardize_level_weights,
)
from keras_recursive_ae.utils.images import image_batch_shape
from keras_recursive_ae.utils.messages import describe

SCHEDULES = ("greedy", "joint", "end_to_end")


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
            outermost first; a zero removes that level's term. Defaults to
            `None`: the image term weighs 1 and each inner level's loss,
            rescaled to count as a relative error (times
            `var(T_0) / var(T_{k-1})`), weighs a ninth divided among the
            inner levels, never more than on the first batch (the encoder's
            tensors may shrink as it trains). Measured in docs/schedules.md.
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
        corruption: `None` (default), or what corrupts every phase's input
            while it trains, fresh at every batch, with the clean tensor
            (or the target of `fit(x, y)`) as the target: stacked denoising
            autoencoders (Vincent et al., 2010). A Keras layer that acts in
            training only, e.g. `keras.layers.GaussianNoise(0.1, seed=1)`
            or `keras.layers.Dropout(0.2)` (masking noise that also scales
            the values it keeps by `1 / 0.8`), or a callable of a batch
            (e.g. with `keras.random` and a `keras.random.SeedGenerator`),
            applied in training only. A seeded layer's random state is kept
            in `checkpoint_dir`; a callable's own generator is not. Greedy
            stage `k` corrupts `T_{k-1}`; fine-tuning, joint and end-to-end
            training corrupt the images. The autoencoder itself carries no
            corruption: inference and saved models see clean inputs.

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

    latent_density = None  # the density `fit_latent_density` fitted to the codes

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
        corruption=None,
    ):
        schedule = check_choice(schedule, "schedule", SCHEDULES)
        self.corruption = _corruption_layer(corruption)
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
                    f"Received: encoder={encoder.name!r}, decoder={describe(decoder)}"
                )
            self._set_autoencoder(encoder)
            return
        self._encoder_blocks = levels_of(encoder, "encoder")
        self._decoder_blocks = levels_of(decoder, "decoder")
        self._decoder_order = check_choice(decoder_order, "decoder_order", DECODER_ORDERS)
        input_shape = input_shape or _declared_input_shape(encoder)
        if input_shape is not None:
            self._build(input_shape)
        else:
            # Raises a depth mismatch before any data, where it can tell.
            SymmetricAutoencoder.check_depths(
                self._encoder_blocks, self._decoder_blocks, decoder_order
            )

    def _build(self, input_shape):
        self._set_autoencoder(
            SymmetricAutoencoder(
                self._encoder_blocks,
                self._decoder_blocks,
                input_shape=input_shape,
                decoder_order=self._decoder_order,
                name="recursive_autoencoder",
            ),
            stacklevel=5,
        )

    def _set_autoencoder(self, autoencoder, stacklevel=4):
        self._autoencoder = autoencoder
        self.level_weights = standardize_level_weights(self._level_weights, autoencoder.depth)
        if self.schedule == "greedy":
            # The warning points at the user's call (RecursiveTrainer or fit).
            warn_before_greedy(autoencoder, stacklevel)

    @property
    def autoencoder(self):
        """The `SymmetricAutoencoder` being trained (also `model`): levels, shapes, views."""
        if self._autoencoder is None:
            raise ValueError(
                "The trainer does not know the input shape yet: pass "
                "`input_shape=` to `RecursiveTrainer`, give the encoder a "
                "`keras.Input`, or call `fit` first."
            )
        return self._autoencoder

    @property
    def model(self):
        """The full autoencoder, a functional `keras.Model` (a `SymmetricAutoencoder`)."""
        return self.autoencoder

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

    def compile(
        self, optimizer="adam", loss="mse", metrics=None, *, fine_tune_optimizer=None, **kwargs
    ):
        """Configures the training of every phase, as `keras.Model.compile` does.

        Each phase (each greedy stage, the fine-tuning pass) compiles its
        own model with a fresh copy of its optimizer (and of the metrics), so
        no optimizer state leaks from one level to the next.

        Args:
            optimizer: name or `keras.optimizers.Optimizer` instance.
            fine_tune_optimizer: the optimizer of the fine-tuning pass
                (`fit(..., fine_tune_epochs=N)`), a name or instance.
                Defaults to `None`: `optimizer` at a tenth of its learning
                rate. A fresh optimizer at the greedy stages' rate undoes
                much of what they learned (docs/schedules.md).
            loss: reconstruction loss between a model's output and its
                target (`T_{k-1}` for a greedy stage, the image otherwise),
                e.g. `"mse"` (default). For `"joint"`, the loss of every
                level. A loss that expects targets in [0, 1]
                (`"binary_crossentropy"`) warns at `fit` when an inner
                stage's target can leave [0, 1].
            metrics: list of metrics, computed on the same pair (for
                `"joint"`: on the image).
            **kwargs: any other `keras.Model.compile` argument
                (`jit_compile`, `steps_per_execution`, ...).
        """
        keras.optimizers.get(optimizer)  # fails now on an unknown optimizer
        keras.losses.get(loss)
        if fine_tune_optimizer is not None:
            keras.optimizers.get(fine_tune_optimizer)
        self._compile_args = {"optimizer": optimizer, "loss": loss, "metrics": metrics, **kwargs}
        self._fine_tune_optimizer = fine_tune_optimizer

    def fit(
        self,
        x,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        *,
        fine_tune_epochs=0,
        checkpoint_dir=None,
    ):
        """Trains the autoencoder with the trainer's schedule, as one run.

        To the callbacks, the whole schedule is one training run: epochs are
        numbered across phases (stage 2's first epoch of `epochs=[2, 2]` is
        epoch 3), `callback.model` is the full autoencoder, every epoch's
        logs hold the phase as `stage` and, with validation data, the full
        autoencoder's loss on the validation images as `val_image_loss` (the
        one number comparable across stages: monitor it with
        `ModelCheckpoint(save_best_only=True)` or `EarlyStopping`), and
        `on_train_begin`/`on_train_end` happen once. A callback that stops
        training (`EarlyStopping`) ends the current phase; the next one
        starts. `callback.model.optimizer` is the running phase's optimizer.

        Args:
            x: the inputs: images as a NumPy array `(N, height, width,
                channels)` of floats, or a batched `tf.data.Dataset`
                yielding them or `(inputs, targets)` pairs of images of the
                same shape.
            y: the targets of an array `x`, of its shape (e.g. the clean
                images of noisy inputs, for denoising), or `None` (default):
                the target is the input. Greedy stage `k` then learns to
                rebuild `T_{k-1}` of the targets from `T_{k-1}` of the
                inputs, both through the frozen encoder levels before it;
                the other schedules map inputs to targets.
            batch_size: as in `keras.Model.fit` (not for datasets).
            epochs: for `"greedy"`, epochs of every stage, or a list with one
                count per level, outermost first (`0` skips a level); for
                the other schedules, the number of epochs.
            verbose: as in `keras.Model.fit`; progress bars are labelled
                with the phase, e.g. `"Stage 2/7 - Epoch 1/3"`.
            callbacks: Keras callbacks, for the whole run (see above).
                `BackupAndRestore` is refused: use `checkpoint_dir`.
            validation_split: as in `keras.Model.fit`, for arrays: the last
                fraction of `x` is held out.
            validation_data: held-out data, in the same forms as `x`, or
                an `(inputs, targets)` tuple of arrays. Each phase reports
                its loss on them as `val_loss`, and the full autoencoder's
                loss from inputs to targets as `val_image_loss`.
            shuffle: as in `keras.Model.fit`.
            class_weight: not supported (refused).
            sample_weight: not supported (refused).
            initial_epoch: the epoch of the run to start at (epochs are
                numbered across phases).
            steps_per_epoch: batches per epoch of every phase.
            validation_steps: as in `keras.Model.fit`.
            validation_batch_size: as in `keras.Model.fit`.
            validation_freq: as in `keras.Model.fit`, within each phase.
            fine_tune_epochs: for `"greedy"`, epochs of an end-to-end pass
                over the assembled autoencoder, everything unfrozen, after
                the last stage. Defaults to `0` (the paper: none).
            checkpoint_dir: optional folder where the run's whole state is
                saved after every epoch. Calling `fit` again with the same
                arguments and folder (e.g. after the process was killed)
                resumes in the phase and epoch where it stopped; a finished
                run is not trained again. Arrays and caches are read in an
                order fixed by the seed and the epoch, so a resumed run ends
                with the same weights as an uninterrupted one (bit for bit
                on the CPU, after `keras.utils.set_random_seed`).

        Returns:
            A `keras.callbacks.History` over all phases: `history.history`
            holds every metric per epoch and `history.history["stage"]` the
            phase each epoch belongs to (see `stage` above).
        """
        if self._compile_args is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        _refuse(class_weight=class_weight, sample_weight=sample_weight)
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.BackupAndRestore):
                raise ValueError(
                    "`BackupAndRestore` cannot restore a run of several phases. Pass "
                    "`checkpoint_dir=` to `fit` instead: it resumes a killed run in the "
                    f"phase and epoch where it stopped. Received: callbacks={describe(callbacks)}"
                )
        if validation_split and validation_data is None:
            x, y, validation_data = _split(x, y, validation_split)
        if self._autoencoder is None:
            self._build(image_batch_shape(x, "x")[1:])
        phases = self._phases(epochs, fine_tune_epochs)
        if self.schedule == "joint" or any((p.level or 1) > 1 and p.epochs for p in phases):
            message = inner_loss_warning(self.autoencoder, self._compile_args["loss"])
            if message:  # before any stage trains, at the user's `fit`
                warnings.warn(message, GreedyTrainingWarning, stacklevel=2)
        check_int(initial_epoch, "initial_epoch")
        check_int(steps_per_epoch, "steps_per_epoch", minimum=1, allow_none=True)
        check_int(validation_steps, "validation_steps", minimum=1, allow_none=True)
        # Every stage is built, compiled and trained in the distribution
        # (tf.distribute strategy, keras.distribution) the trainer was created in.
        with distribution_lib.stage_scope(self._distribution):
            distribution_lib.check_weights(self._distribution, self.model)
            data = TrainingData(
                self.autoencoder,
                self._cache,
                x,
                y,
                validation_data,
                batch_size=batch_size,
                greedy=self.schedule == "greedy",
                shuffle=shuffle,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                validation_batch_size=validation_batch_size,
            )
            fingerprint = {
                "schedule": self.schedule,
                "phases": [[p.stage, p.epochs] for p in phases],
            }
            run = TrainingRun(
                self.model,
                phases,
                callbacks,
                verbose,
                checkpoint_dir,
                fingerprint,
                initial_epoch,
                random_state=[] if self.corruption is None else self.corruption.variables,
            )
            run.begin()
            with data:
                for phase in run.phases:
                    first_epoch = run.first_epoch(phase)
                    if first_epoch < phase.epochs:
                        if verbose != 0:
                            print(f"{phase.label}: {self._describe(phase)}", flush=True)
                        self._fit_phase(phase, first_epoch, run, data, verbose, validation_freq)
            run.end()
        return run.history

    def fit_latent_density(self, x, components=10, *, batch_size=None, seed=0):
        """Fits a density to the codes `T_n` of the training images, for `generate`.

        Encodes `x` with `trainer.encoder` and fits a Gaussian mixture with
        full covariances to the flattened codes ("ex-post density
        estimation", Ghosh et al. 2020), so that a deterministic autoencoder
        (greedily trained or not) can generate: `generate` then decodes draws
        from it. Needs scikit-learn (the `generation` extra). The density is
        kept as `trainer.latent_density`; save it with
        `trainer.latent_density.save("density.npz")` beside the decoder, and
        generate in another process with `keras_recursive_ae.generate`. Fit
        it again after training further: the codes have moved.

        Args:
            x: the training images, as for `fit`: an array or a batched
                `tf.data.Dataset`.
            components: the number of Gaussians, at most the number of
                images. Defaults to `10`; `1` is one Gaussian.
            batch_size: batch size for encoding an array.
            seed: the seed of the mixture's initialization. Defaults to `0`.

        Returns:
            The fitted `LatentDensity` (also `trainer.latent_density`).

        Example:

        ```python
        import numpy as np
        from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

        images = np.random.rand(32, 8, 8, 1).astype("float32")
        trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 8), input_shape=(8, 8, 1)))
        trainer.compile()
        trainer.fit(images, epochs=1, batch_size=16, verbose=0)
        trainer.fit_latent_density(images, components=2)
        trainer.generate(4, seed=0).shape          # (4, 8, 8, 1)
        ```
        """
        self.latent_density = generation.fit_latent_density(
            self.encoder, x, components, batch_size=batch_size, seed=seed
        )
        return self.latent_density

    def generate(self, num_images, seed=None):
        """Decodes codes drawn from the model's code density into images.

        The density is the one `fit_latent_density` fitted, if any;
        otherwise N(0, I) for a variational innermost level (e.g.
        `MirroredConvStack(..., variational=True)`, whose codes are trained
        towards it). A deterministic model needs `fit_latent_density` first.

        Args:
            num_images: how many images to generate.
            seed: optional integer; the same seed gives the same images
                (the codes are drawn with NumPy, the same in every process
                and under every backend).

        Returns:
            A NumPy array of `num_images` images, in the decoder's output
            range (`[0, 1]` for a sigmoid output).

        Raises:
            ValueError: a deterministic model has no fitted density, or an
                argument is invalid.
        """
        density = self.latent_density or generation.code_prior(self.encoder)
        return generation.generate(self.decoder, density, num_images, seed)

    def _phases(self, epochs, fine_tune_epochs):
        check_int(fine_tune_epochs, "fine_tune_epochs")
        depth = self.depth
        if self.schedule == "greedy":
            phases = [
                Phase(level, level, f"Stage {level}/{depth}", count)
                for level, count in enumerate(epochs_per_level(epochs, depth), start=1)
            ]
            if fine_tune_epochs:
                fine_tuning = Phase(depth + 1, None, "Fine-tuning", fine_tune_epochs, True)
                # Refuses a learning-rate schedule it cannot scale before any training.
                phase_lib.compile_args(self._compile_args, fine_tuning, self._fine_tune_optimizer)
                phases.append(fine_tuning)
            return phases
        check_int(epochs, "epochs")
        if fine_tune_epochs:
            raise ValueError(
                "`fine_tune_epochs` follows a greedy schedule; the "
                f"{self.schedule!r} schedule already trains every level at once. "
                f"Received: fine_tune_epochs={fine_tune_epochs!r}"
            )
        label = "Joint training" if self.schedule == "joint" else "End-to-end training"
        return [Phase(depth + 1, None, label, epochs)]

    def _describe(self, phase):
        shapes = self.autoencoder.shapes
        if phase.level is None:
            return f"all {self.depth} levels, images {shapes[0]}"
        level = phase.level
        return (
            f"encoder and decoder level {level}, rebuilding T_{level - 1} "
            f"{shapes[level - 1]} from T_{level} {shapes[level]}"
        )

    def _phase_model(self, phase, data):
        """The model `phase` fits, and whether it takes `[inputs, targets]`.

        Targets that the model must run through frozen levels (a stage that
        recomputes `T_{k-1}`, joint's targets at every level) are a second
        input of the model; other targets are `fit`'s `y`.
        """
        autoencoder = self.autoencoder
        if phase.level is not None:
            level = phase.level
            prefix = None
            if data.recomputes and level > 1:
                prefix = autoencoder.encoder_prefix(level - 1)
            separate = prefix is not None and data.has_targets
            model = StageModel(
                autoencoder.encoder_levels[level - 1],
                autoencoder.decoder_levels[level - 1],
                prefix=prefix,
                corruption=self.corruption,
                separate_targets=separate,
                name=f"stage_{level}",
            )
            return model, separate
        if self.schedule == "joint":
            model = JointModel(
                autoencoder,
                self.level_weights,
                self.stop_target_gradients,
                self.corruption,
                separate_targets=data.has_targets,
            )
            return model, data.has_targets
        name = "fine_tune" if phase.fine_tuning else self.schedule
        model = StageModel(
            autoencoder.encoder, autoencoder.decoder, corruption=self.corruption, name=name
        )
        return model, False

    def _fit_phase(self, phase, first_epoch, run, data, verbose, validation_freq):
        autoencoder = self.autoencoder
        level = phase.level or 1
        frozen = [layer for k in range(1, level) for layer in autoencoder.encoder_level_layers(k)]
        before = autoencoder.get_weights()
        with _frozen(frozen):
            model, targets_as_inputs = self._phase_model(phase, data)
            model.compile(
                **phase_lib.compile_args(self._compile_args, phase, self._fine_tune_optimizer)
            )
            # Built here rather than inside the first traced step, where
            # TensorFlow would then trace the step a second time.
            model.optimizer.build(model.trainable_variables)
            if isinstance(model, JointModel) and model.level_weights is None:
                model.adapt(data.first_batch())
            train, steps, validation, validation_steps = data.fit_inputs(
                phase, first_epoch, targets_as_inputs
            )
            image_loss = data.image_loss(self._compile_args["loss"])
            try:
                with run.phase_callbacks(phase, model, steps, image_loss) as callbacks:
                    model.fit(
                        train,
                        epochs=phase.epochs,
                        initial_epoch=first_epoch,
                        steps_per_epoch=steps,
                        shuffle=False,  # the batches come in their seeded order
                        validation_data=validation,
                        validation_steps=validation_steps,
                        validation_freq=validation_freq,
                        callbacks=callbacks,
                        verbose=verbose,
                    )
            except BaseException:
                # A failed phase leaves no half-trained weights behind; the
                # phases before it keep theirs.
                autoencoder.set_weights(before)
                raise


def _refuse(**arguments):
    for argument, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"`RecursiveTrainer.fit` does not take `{argument}`: every image "
                f"counts the same. Received: {argument}={describe(value)}"
            )


def _split(x, y, validation_split):
    if not isinstance(validation_split, float) or not 0 < validation_split < 1:
        raise ValueError(
            "Invalid value for argument `validation_split`. Expected a float "
            f"between 0 and 1. Received: validation_split={validation_split!r}"
        )
    if not hasattr(x, "__len__") or not hasattr(x, "shape"):
        raise ValueError(
            "`validation_split` is only supported for arrays; pass "
            f"`validation_data` for a dataset. Received: x of type {type(x).__name__}"
        )
    split = int(len(x) * (1 - validation_split))
    if y is None or y is x:  # one chain of caches, not two
        return x[:split], None, x[split:]
    return x[:split], y[:split], (x[split:], y[split:])


@contextlib.contextmanager
def _frozen(layers):
    """Freezes `layers` for a phase; their flags are restored even on error."""
    saved = [(layer, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.trainable = False
        yield
    finally:
        # Parents come before their sublayers, so each flag ends as it was.
        for layer, trainable in saved:
            layer.trainable = trainable


def _corruption_layer(corruption):
    if corruption is None or isinstance(corruption, keras.layers.Layer):
        return corruption
    if callable(corruption):
        return TrainingOnly(corruption, name="corruption")
    raise ValueError(
        "Invalid value for argument `corruption`. Expected None, a Keras layer "
        "(e.g. keras.layers.GaussianNoise(0.1)) or a callable of a batch. "
        f"Received: corruption of type {type(corruption).__name__}"
    )


def _declared_input_shape(encoder):
    try:
        return tuple(encoder.input_shape[1:])
    except (AttributeError, ValueError):
        return None
