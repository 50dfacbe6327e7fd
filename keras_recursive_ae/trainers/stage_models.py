"""One stage of recursive training: a level learns to rebuild its input."""

import keras

from keras_recursive_ae.trainers.distribution import multi_worker_logs

# The default joint loss: the inner levels' relative errors together weigh a
# ninth of the image's, so the image term is 90% of the loss at equal
# relative errors.
INNER_LEVELS_WEIGHT = 1 / 9


class StageModel(keras.Model):
    """Encoder level `k` followed by decoder level `k`, trained to rebuild `T_{k-1}`.

    The model's input is either `T_{k-1}` itself (computed once by the frozen
    encoder levels and cached), or the images, in which case the frozen
    `prefix` (`E_1..E_{k-1}`, always in inference mode) computes `T_{k-1}`
    at every step. Either way the model returns `(rebuilt, clean)`, where
    `clean` is `T_{k-1}` before any `corruption`, and the compiled loss and
    metrics compare `rebuilt` with the target: the `y` that `fit` passes
    (`T_{k-1}` of the targets, through the same `prefix`), or else `clean`.
    So Keras' own `fit`, `evaluate`, callbacks and progress bars train it
    unchanged on every backend.

    Args:
        level_encoder: the model `T_{k-1} -> T_k`.
        level_decoder: the model `T_k -> T_{k-1}`.
        prefix: `None` (inputs are `T_{k-1}`) or the frozen model
            `images -> T_{k-1}`.
        corruption: `None`, or a layer applied to `T_{k-1}` before the
            encoder level, in training only (see `TrainingOnly`).
        name: name of the model.
    """

    def __init__(self, level_encoder, level_decoder, prefix=None, corruption=None, name=None):
        source = level_encoder if prefix is None else prefix
        inputs = keras.Input(shape=tuple(source.inputs[0].shape[1:]), name="stage_input")
        clean = inputs if prefix is None else prefix(inputs, training=False)
        corrupted = clean if corruption is None else corruption(clean)
        rebuilt = level_decoder(level_encoder(corrupted))
        super().__init__(inputs, (rebuilt, clean), name=name)
        self.prefix = prefix

    def _target(self, y, clean):
        if y is None:
            return clean
        return y if self.prefix is None else self.prefix(y, training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rebuilt, clean = y_pred
        return super().compute_loss(
            x=x,
            y=keras.ops.stop_gradient(self._target(y, clean)),
            y_pred=rebuilt,
            sample_weight=sample_weight,
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        rebuilt, clean = y_pred
        target = self._target(y, clean)
        logs = super().compute_metrics(x, target, rebuilt, sample_weight=sample_weight)
        return multi_worker_logs(logs)


class TrainingOnly(keras.layers.Layer):
    """Applies `corruption` in training only: the identity at inference.

    Wraps a `RecursiveTrainer`'s `corruption` that is a plain callable (a
    function of a batch, e.g. with `keras.random`), so that stage models
    corrupt their inputs while they train and not while they evaluate.
    Keras' own noise layers (`GaussianNoise`, `Dropout`) already behave so
    and are used as they are.

    Args:
        corruption: a callable of a batch of tensors.
    """

    def __init__(self, corruption, **kwargs):
        super().__init__(**kwargs)
        self.corruption = corruption

    def call(self, inputs, training=None):
        return self.corruption(inputs) if training else inputs

    def compute_output_shape(self, input_shape):
        return input_shape


class JointModel(keras.Model):
    """All levels trained at once, with a reconstruction loss at every level.

    The paper's future work: one model whose loss is
    `sum_k w_k * loss(R_{k-1}, T_{k-1})`, where `R_{k-1}` is the decoder's
    tensor at level `k-1` of the full autoencoder (`R_0` is the
    reconstructed image) and `T_{k-1}` the encoder's (`T_0` is the image).
    Per-level losses are reported as the metrics `level_1_loss` ..
    `level_n_loss` (unweighted); compiled metrics compare `R_0` with the
    image. With targets (`fit(x, y)`), `T_0..T_{n-1}` are those of `y`; with
    a `corruption`, the `R` are those of the corrupted images and the `T`
    those of the clean ones.

    Args:
        autoencoder: the `SymmetricAutoencoder` to train.
        level_weights: one non-negative weight per level, outermost first (a
            zero weight removes that level's term), or `None`: the image term
            with weight 1, each inner level's loss rescaled by
            `var(T_0) / var(T_{k-1})` (so it counts as a relative error, at
            the image's scale) but never more than before training (see
            `adapt`), and the inner levels together weighted
            `INNER_LEVELS_WEIGHT`.
        stop_target_gradients: whether the targets `T_{k-1}` (k >= 2) are
            held constant, so that the encoder learns only through the
            reconstruction paths and cannot shrink its own targets.
        corruption: `None`, or a layer applied to the images in training.
        name: name of the model.
    """

    def __init__(
        self, autoencoder, level_weights, stop_target_gradients=True, corruption=None, name="joint"
    ):
        images = keras.Input(shape=autoencoder.shapes[0], name="images")
        level_tensors = autoencoder.level_tensors_model()
        depth = autoencoder.depth
        corrupted = images if corruption is None else corruption(images)
        tensors = keras.tree.flatten(level_tensors(corrupted))
        if corruption is not None:  # the encoder's tensors of the clean images
            tensors = tensors[:depth] + keras.tree.flatten(level_tensors(images))[depth:]
        rebuilt, targets = tensors[:depth], [images] + tensors[depth:]
        super().__init__(images, (rebuilt, targets), name=name)
        self.encoder_levels = autoencoder.encoder_levels[: depth - 1]
        self.level_weights = None if level_weights is None else list(level_weights)
        # The default weights' ceiling (see `adapt`), saved with the model so
        # that a resumed run keeps it.
        self.weight_ceilings = self.add_weight(
            shape=(depth,), initializer="ones", trainable=False, name="weight_ceilings"
        )
        self.stop_target_gradients = stop_target_gradients
        self.level_trackers = [
            keras.metrics.Mean(name=f"level_{k}_loss") for k in range(1, depth + 1)
        ]
        self.level_loss = None

    def compile(self, optimizer="adam", loss="mse", metrics=None, **kwargs):
        self.level_loss = keras.losses.get(loss)
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def _targets(self, y, targets):
        """`T_0..T_{n-1}` of the targets `y`, or the model's own (of its inputs)."""
        if y is None:
            return targets
        targets = [y]
        for level in self.encoder_levels:
            targets.append(level(targets[-1], training=False))
        return targets

    def _level_losses(self, y, y_pred):
        rebuilt, targets = y_pred
        targets = self._targets(y, targets)
        losses = []
        for level, (output, target) in enumerate(zip(rebuilt, targets), start=1):
            if self.stop_target_gradients and level > 1:
                target = keras.ops.stop_gradient(target)
            value = self.level_loss(
                keras.ops.cast(target, "float32"), keras.ops.cast(output, "float32")
            )
            losses.append(keras.ops.mean(value))
        return losses

    def _relative_weights(self, targets):
        # Each inner level's loss as a relative error, at the image's scale.
        variances = keras.ops.stack(
            [keras.ops.var(keras.ops.stop_gradient(keras.ops.cast(t, "float32"))) for t in targets]
        )
        inner = INNER_LEVELS_WEIGHT / max(len(targets) - 1, 1)
        # The epsilon keeps a constant (e.g. dead) tensor from taking over the loss.
        ratios = inner * variances[0] / (variances[1:] + 1e-6)
        return keras.ops.concatenate([keras.ops.ones((1,)), ratios])

    def adapt(self, images):
        """Records the default level weights on a batch of images, before training.

        The default weights are recomputed on every batch but never exceed
        these: the encoder's tensors can shrink as it trains (at 128x128
        their variance fell 10- to 70-fold in the first epoch), and weights
        that grew as they shrank let the inner levels take the loss over
        (measured: docs/schedules.md, "Joint"). Explicit `level_weights`
        need no `adapt`.
        """
        targets = self.predict_on_batch(images)[1]
        self.weight_ceilings.assign(self._relative_weights(targets))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = self._level_losses(y, y_pred)
        if self.level_weights is None:
            targets = self._targets(y, y_pred[1])
            weights = keras.ops.minimum(self.weight_ceilings, self._relative_weights(targets))
            total = sum(weights[k] * loss for k, loss in enumerate(losses))
        else:
            total = sum(w * loss for w, loss in zip(self.level_weights, losses) if w != 0)
        for loss in self.losses:
            total = total + keras.ops.cast(loss, "float32")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for tracker, loss in zip(self.level_trackers, self._level_losses(y, y_pred)):
            tracker.update_state(loss)
        rebuilt, targets = y_pred
        target = targets[0] if y is None else y
        logs = super().compute_metrics(x, target, rebuilt[0], sample_weight=sample_weight)
        return multi_worker_logs(logs)
