"""One stage of recursive training: a level learns to rebuild its input."""

import keras

from keras_recursive_ae.distribution import multi_worker_logs


class StageModel(keras.Model):
    """Encoder level `k` followed by decoder level `k`, trained to rebuild `T_{k-1}`.

    The model's input is either `T_{k-1}` itself (computed once by the frozen
    encoder levels and cached), or the images, in which case the frozen
    `prefix` (`E_1..E_{k-1}`, always in inference mode) computes `T_{k-1}`
    at every step. Either way the model returns `(rebuilt, target)` and the
    compiled loss and metrics compare the two, so Keras' own `fit`,
    `evaluate`, callbacks and progress bars train it unchanged on every
    backend.

    Args:
        level_encoder: the model `T_{k-1} -> T_k`.
        level_decoder: the model `T_k -> T_{k-1}`.
        prefix: `None` (inputs are `T_{k-1}`) or the frozen model
            `images -> T_{k-1}`.
        name: name of the model.
    """

    def __init__(self, level_encoder, level_decoder, prefix=None, name=None):
        source = level_encoder if prefix is None else prefix
        inputs = keras.Input(shape=tuple(source.inputs[0].shape[1:]), name="stage_input")
        target = inputs if prefix is None else prefix(inputs, training=False)
        rebuilt = level_decoder(level_encoder(target))
        super().__init__(inputs, (rebuilt, target), name=name)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rebuilt, target = y_pred
        return super().compute_loss(
            x=x,
            y=keras.ops.stop_gradient(target),
            y_pred=rebuilt,
            sample_weight=sample_weight,
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        rebuilt, target = y_pred
        logs = super().compute_metrics(x, target, rebuilt, sample_weight=sample_weight)
        return multi_worker_logs(logs)


class StageProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, with every epoch line labelled by its stage.

    Prints `"<label> - Epoch i/n"` where Keras prints `"Epoch i/n"`.
    """

    def __init__(self, label):
        super().__init__()
        self.label = label

    def on_epoch_begin(self, epoch, logs=None):
        # Keras prints its own unlabelled "Epoch i/n" only when epochs > 1.
        epochs, self.epochs = self.epochs, 1
        super().on_epoch_begin(epoch, logs)
        self.epochs = epochs
        if self.verbose:
            print(f"{self.label} - Epoch {epoch + 1}/{self.epochs}", flush=True)
