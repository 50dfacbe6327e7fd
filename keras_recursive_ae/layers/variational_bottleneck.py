"""A variational bottleneck for the innermost level of an autoencoder."""

import math

import keras
import numpy as np
from keras import ops

from keras_recursive_ae.utils.arguments import check_int
from keras_recursive_ae.utils.messages import describe

KL_SCALE = 0.01
"""The default KL weight times the number of values the model rebuilds.

With `loss="mse"` (a mean over the `N` rebuilt values), the negative ELBO of
a Gaussian decoder of standard deviation `s` per value, divided by `N` and
multiplied by `2 s**2`, is `mse + (2 s**2 / N) * KL`: `kl_weight = KL_SCALE / N`
is that balance at `s = 0.07` (`2 s**2 = 0.01`), in the units of the rebuilt
values. At `1 / N` (`s = 0.71`) the paper's network diverged in its innermost
greedy stage on all of LFW at 128x128; at `0.01 / N` it trained (docs/results.md,
run F), the LFW runner's `GREEDY_KL_SCALE`.
"""


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

    The KL term is summed over the code while a loss such as `"mse"` is a
    mean over the `N` values the model rebuilds, so a weight of `1.0` makes
    KL outweigh the reconstruction by about `N` and collapses every code to
    the prior (all samples alike, reconstructions no better than the mean
    image). The default keeps the KL term on the scale of a mean loss:
    `KL_SCALE / N` (`0.01 / N`), the negative ELBO of a Gaussian decoder with
    standard deviation 0.07 per rebuilt value, times `0.01 / N`. The layer
    takes `N` to be the number of values it receives per example (about the
    size of the tensor that an innermost decoder level rebuilds);
    `MirroredConvStack` passes `0.01` over the values of `T_{n-1}`, which
    its innermost stage rebuilds. With a loss summed over values, or a
    decoder that rebuilds a tensor of a very different size, pass the weight
    yourself.

    Measured on 3,200 LFW faces at 32x32 (`MirroredConvStack(filters=(16,
    32, 64), variational=True, latent_dim=32)`, greedy, 3 epochs per stage):
    16 samples from N(0, I) spread 0.13 (standard deviation over samples,
    real faces 0.20) and held-out faces rebuild at a mean squared error of
    0.015 (the mean face: 0.041); at `kl_weight=1.0` the samples spread 0.017
    and the error is 0.043. So weak a KL term leaves the samples varied but
    noisy, and up to `1 / N` they barely change (spread 0.11, error 0.017);
    `4 / N` gave smoother, more face-like samples at a higher error (spread
    0.10, error 0.021), but at 128x128 `1 / N` already diverged. A density
    fitted to the codes (`fit_latent_density`) is the other route to samples.

    Args:
        latent_dim: size of the code.
        kl_weight: weight of the KL term per example, a non-negative number,
            or `None` (default): `KL_SCALE` (0.01) over the number of values
            of the layer's input per example, set when the layer is built.
            Larger weights hold the codes closer to N(0, I) (smoother samples,
            blurrier reconstructions); `0` trains a plain autoencoder with
            noisy codes.
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
    code = VariationalBottleneck(latent_dim=16)(features)  # KL weight 0.01 / 128
    rebuilt = keras.layers.Reshape((4, 4, 8))(keras.layers.Dense(128)(code))
    model = keras.Model(features, rebuilt)
    ```
    """

    def __init__(self, latent_dim, kl_weight=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        if kl_weight is not None and (
            not isinstance(kl_weight, (int, float, np.number))
            or isinstance(kl_weight, bool)
            or not math.isfinite(kl_weight)
            or kl_weight < 0
        ):
            raise ValueError(
                "Invalid value for argument `kl_weight`. Expected a non-negative "
                "number, or None for 0.01 over the number of values the layer "
                f"receives. Received: kl_weight={describe(kl_weight)}"
            )
        seed = check_int(seed, "seed", allow_none=True)
        self.latent_dim = latent_dim
        self.kl_weight = None if kl_weight is None else float(kl_weight)
        # The weight in use: `kl_weight`, or the default once the input is known.
        self._kl_loss_weight = self.kl_weight
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
        if self.kl_weight is None:
            self._kl_loss_weight = KL_SCALE / flat_shape[1]
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
        self.add_loss(self._kl_loss_weight * ops.mean(kl))
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
