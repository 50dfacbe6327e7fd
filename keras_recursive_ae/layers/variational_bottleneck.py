"""A variational bottleneck for the innermost level of an autoencoder."""

import math

import keras
import numpy as np
from keras import ops

from keras_recursive_ae.utils.arguments import check_int


@keras.saving.register_keras_serializable(package="keras_recursive_ae")
class VariationalBottleneck(keras.layers.Layer):
    """Mean and log-variance heads, a reparameterized sample and a KL loss.

    The layer flattens its input, maps it to the mean and the log-variance
    of a diagonal Gaussian over `latent_dim` codes, and returns
    `z = mean + exp(log_var / 2) * eps`, `eps ~ N(0, I)`, in training, and
    the mean in inference (so reconstructions are deterministic). Every call
    adds `kl_weight * KL(N(mean, var) || N(0, I))`, summed over the code and
    averaged over the batch (in float32 under a mixed precision policy), to
    the model's losses, so any model that trains the layer (the innermost
    stage of greedy training, or the whole autoencoder) carries the KL term.
    Decode `z` with a `Dense` layer and a `Reshape` back to the shape this
    layer received.

    Args:
        latent_dim: size of the code.
        kl_weight: weight of the KL term. Defaults to `1.0`.
        seed: optional non-negative integer seed of the sampling noise.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a batch of tensors of any shape.
        training: Python boolean: sample (`True`) or return the mean.

    Example:

    ```python
    import keras
    from keras_recursive_ae import VariationalBottleneck

    features = keras.Input((4, 4, 8))
    code = VariationalBottleneck(latent_dim=16, kl_weight=0.5)(features)
    rebuilt = keras.layers.Reshape((4, 4, 8))(keras.layers.Dense(128)(code))
    model = keras.Model(features, rebuilt)
    ```
    """

    def __init__(self, latent_dim, kl_weight=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        if (
            not isinstance(kl_weight, (int, float, np.number))
            or isinstance(kl_weight, bool)
            or not math.isfinite(kl_weight)
            or kl_weight < 0
        ):
            raise ValueError(
                "Invalid value for argument `kl_weight`. Expected a non-negative "
                f"number. Received: kl_weight={kl_weight!r}"
            )
        seed = check_int(seed, "seed", allow_none=True)
        self.latent_dim = latent_dim
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.mean_head = keras.layers.Dense(latent_dim, name="mean", dtype=self.dtype_policy)
        # Start at unit variance: a random log-variance head can make the
        # first samples explode through exp().
        self.log_var_head = keras.layers.Dense(
            latent_dim, name="log_var", kernel_initializer="zeros", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        flat_shape = (input_shape[0], math.prod(input_shape[1:]))
        self.mean_head.build(flat_shape)
        self.log_var_head.build(flat_shape)

    def call(self, inputs, training=None):
        flat = ops.reshape(inputs, (ops.shape(inputs)[0], -1))
        mean = self.mean_head(flat)
        log_var = self.log_var_head(flat)
        # In float32 under a mixed policy: float16 overflows at mean**2 >
        # 65504 and bfloat16 sums the code with 3 significant digits.
        mean32, log_var32 = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
        kl = -0.5 * ops.sum(1.0 + log_var32 - ops.square(mean32) - ops.exp(log_var32), axis=-1)
        self.add_loss(self.kl_weight * ops.mean(kl))
        if not training:
            return mean
        noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def get_config(self):
        config = {"latent_dim": self.latent_dim, "kl_weight": self.kl_weight, "seed": self.seed}
        base_config = super().get_config()
        return {**base_config, **config}
