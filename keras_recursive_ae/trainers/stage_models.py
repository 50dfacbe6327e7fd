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
    at every step. The model returns `(rebuilt, target)`, and the compiled
    loss and metrics compare the two, so Keras' own `fit`, `evaluate`,
    callbacks and progress bars train it unchanged on every backend. The
    target is the `y` that `fit` passes, if any (a cached `T_{k-1}` of the
    targets, or the images' targets end to end); else, with
    `separate_targets`, the model's second input (the targets, through the
    same `prefix`); else `T_{k-1}` itself, before any `corruption`.

    Args:
        level_encoder: the model `T_{k-1} -> T_k`.
        level_decoder: the model `T_k -> T_{k-1}`.
        prefix: `None` (inputs are `T_{k-1}`) or the frozen model
            `images -> T_{k-1}`.
        corruption: `None`, or a layer applied to `T_{k-1}` before the
            encoder level, in training only (see `TrainingOnly`).
        separate_targets: whether the model takes `[inputs, targets]`: the
            targets then go through `prefix` inside the model's graph.
        name: name of the model.
    """

    def __init__(
        self,
        level_encoder,
        level_decoder,
        prefix=None,
        corruption=None,
        separate_targets=False,
        name=None,
    ):
        source = level_encoder if prefix is None else prefix
        shape = tuple(source.inputs[0].shape[1:])
        inputs = keras.Input(shape=shape, name="stage_input")
        clean = inputs if prefix is None else prefix(inputs, training=False)
        target = clean
        if separate_targets:
            targets = keras.Input(shape=shape, name="stage_target")
            target = targets if prefix is None else prefix(targets, training=False)
            inputs = [inputs, targets]
        corrupted = clean if corruption is None else corruption(clean)
        rebuilt = level_decoder(level_encoder(corrupted))
        super().__init__(inputs, (rebuilt, target), name=name)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rebuilt, target = y_pred
        return super().compute_loss(
            x=x,
            y=keras.ops.stop_gradient(target if y is None else y),
            y_pred=rebuilt,
            sample_weight=sample_weight,
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        rebuilt, target = y_pred
        target = target if y is None else y
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
    image. With `separate_targets` (the model then takes `[inputs, targets]`,
    for `fit(x, y)`), `T_0..T_{n-1}` are those of the targets; with a
    `corruption`, the `R` are those of the corrupted images and the `T`
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
        separate_targets: whether the model takes `[inputs, targets]`.
        name: name of the model.
    """

    def __init__(
        self,
        autoencoder,
        level_weights,
        stop_target_gradients=True,
        corruption=None,
        separate_targets=False,
        name="joint",
    ):
        images = keras.Input(shape=autoencoder.shapes[0], name="images")
        level_tensors = autoencoder.level_tensors_model()
        depth = autoencoder.depth
        corrupted = images if corruption is None else corruption(images)
        tensors = keras.tree.flatten(level_tensors(corrupted))
        inputs, clean = images, images
        if separate_targets:  # the model takes [inputs, targets]
            clean = keras.Input(shape=autoencoder.shapes[0], name="targets")
            inputs = [images, clean]
        if clean is not corrupted:  # the encoder's tensors of the clean targets
            tensors = tensors[:depth] + keras.tree.flatten(level_tensors(clean))[depth:]
        rebuilt, targets = tensors[:depth], [clean] + tensors[depth:]
        super().__init__(inputs, (rebuilt, targets), name=name)
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

    def _level_losses(self, y_pred):
        rebuilt, targets = y_pred
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
        inputs = images if len(self.inputs) == 1 else [images, images]
        targets = self.predict_on_batch(inputs)[1]
        self.weight_ceilings.assign(self._relative_weights(targets))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = self._level_losses(y_pred)
        if self.level_weights is None:
            weights = keras.ops.minimum(self.weight_ceilings, self._relative_weights(y_pred[1]))
            total = sum(weights[k] * loss for k, loss in enumerate(losses))
        else:
            total = sum(w * loss for w, loss in zip(self.level_weights, losses) if w != 0)
        for loss in self.losses:
            total = total + keras.ops.cast(loss, "float32")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for tracker, loss in zip(self.level_trackers, self._level_losses(y_pred)):
            tracker.update_state(loss)
        rebuilt, targets = y_pred
        logs = super().compute_metrics(x, targets[0], rebuilt[0], sample_weight=sample_weight)
        return multi_worker_logs(logs)
