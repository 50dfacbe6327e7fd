"""One batch normalization shared by an encoder level and its mirrored decoder."""

import math

import keras
import numpy as np

from keras_recursive_ae.utils.arguments import check_choice
from keras_recursive_ae.utils.messages import describe

_DECODER_STATISTICS = ("encoder", "batch")
_SITES = ("encoder", "decoder")


@keras.saving.register_keras_serializable(package="keras_recursive_ae")
class SharedBatchNorm(keras.layers.BatchNormalization):
    """Batch normalization shared by the two blocks that produce one tensor.

    In a symmetric autoencoder the tensor `T_k` is produced by the encoder
    block `E_k` and rebuilt by the decoder block `D_{k+1}`. Ending both blocks
    with the same `SharedBatchNorm` (one `gamma`/`beta`, one set of moving
    statistics) puts the rebuilt tensor in exactly the space of its target.

    The layer is called once at each site, in one functional graph, with the
    `site` call argument:

    - `site="encoder"`: a standard `BatchNormalization`. In training it
      normalizes with the batch statistics and updates the moving statistics;
      in inference, or when the layer is frozen (`trainable=False`), it uses
      the moving statistics.
    - `site="decoder"`: statistics follow `decoder_statistics`:
        - `"encoder"` (default): always the encoder site's moving statistics,
          never batch statistics and never an update, so the decoder output
          goes through the same affine map as the encoder output at inference.
        - `"batch"`: plain Keras behaviour, as the paper ran it. In training
          the decoder site uses its own batch statistics and also updates the
          moving statistics, which then mix both sites.

    `gamma` and `beta` receive gradients from both sites while trainable.
    Because the sharing is ordinary Keras layer sharing, a model that calls
    the layer at both sites keeps one set of weights through
    `model.save()` / `keras.saving.load_model()`. Call the layer directly in
    the graph (or inside a functional or `Sequential` block): a custom layer
    that *holds* a shared normalization is serialized twice by Keras and
    cannot be reloaded.

    Args:
        decoder_statistics: `"encoder"` or `"batch"`; the statistics used at
            the decoder site in training (see above). Defaults to
            `"encoder"`.
        **kwargs: every argument of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, initializers,
            regularizers, constraints, `name`, `dtype`, ...).

    Call arguments:
        inputs: the tensor to normalize.
        training: Python boolean, whether the call is in training mode.
        mask: optional mask, as in `keras.layers.BatchNormalization`.
        site: `"encoder"` (default) or `"decoder"`.

    Example:

    ```python
    import keras
    from keras_recursive_ae import SharedBatchNorm

    norm = SharedBatchNorm()
    images = keras.Input((32, 32, 3))
    code = norm(keras.layers.Conv2D(8, 3, strides=2, padding="same")(images))
    rebuilt = keras.layers.Conv2D(8, 3, padding="same")(code)
    rebuilt = norm(rebuilt, site="decoder")
    model = keras.Model(images, rebuilt)
    ```
    """

    def __init__(self, decoder_statistics="encoder", **kwargs):
        decoder_statistics = check_choice(
            decoder_statistics, "decoder_statistics", _DECODER_STATISTICS
        )
        # BatchNormalization casts or uses these unchecked; a bad value would
        # surface later, deep inside the backend.
        axis = kwargs.get("axis", -1)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(
                "Invalid value for argument `axis`. Expected an integer. "
                f"Received: axis={describe(axis)}"
            )
        momentum = kwargs.get("momentum", 0.99)
        if not _is_number(momentum) or not 0 <= momentum <= 1:
            raise ValueError(
                "Invalid value for argument `momentum`. Expected a number in "
                f"[0, 1]. Received: momentum={describe(momentum)}"
            )
        epsilon = kwargs.get("epsilon", 1e-3)
        if not _is_number(epsilon) or not 0 < epsilon < math.inf:
            raise ValueError(
                "Invalid value for argument `epsilon`. Expected a finite "
                f"positive number. Received: epsilon={describe(epsilon)}"
            )
        super().__init__(**kwargs)
        self.decoder_statistics = decoder_statistics

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"Invalid value for argument `axis` of layer '{self.name}': the "
                f"input has rank {rank}. Received: axis={self.axis}, "
                f"input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None, site="encoder"):
        if site not in _SITES:
            raise ValueError(
                f"Invalid value for call argument `site` of layer "
                f"'{self.name}'. Expected one of {_SITES}. "
                f"Received: site={describe(site)}"
            )
        if site == "decoder" and self.decoder_statistics == "encoder":
            # Inference mode reads the encoder's moving statistics and never
            # updates them, while gamma and beta still receive gradients.
            training = False
        return super().call(inputs, training=training, mask=mask)

    def add_weight(self, *args, **kwargs):
        # Keras 3 creates the moving statistics with aggregation "none", so
        # under a tf.distribute strategy every replica updates its own copy
        # and the copies drift apart (what is saved is replica 0's). "mean"
        # (tf.keras 2's choice) keeps one set: the mean of the replicas'
        # updates. Other backends ignore the aggregation.
        if not kwargs.get("trainable", True):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def get_config(self):
        config = {"decoder_statistics": self.decoder_statistics}
        base_config = super().get_config()
        return {**base_config, **config}


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number))
