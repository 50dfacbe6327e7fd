"""Builds a symmetric convolutional encoder/decoder pair from a few arguments."""

import dataclasses
import math

import keras

from keras_recursive_ae.layers.shared_batch_norm import SharedBatchNorm
from keras_recursive_ae.layers.variational_bottleneck import KL_SCALE, VariationalBottleneck
from keras_recursive_ae.models.symmetric_autoencoder import (
    SymmetricAutoencoder,
    standardize_input_shape,
)
from keras_recursive_ae.utils.arguments import check_choice, check_int
from keras_recursive_ae.utils.messages import describe

_NORMALIZATIONS = (None, "batch", "shared")
_DECODER_STYLES = ("transpose", "upsampling")
_ENCODER_STYLES = ("strided", "pooling")


@dataclasses.dataclass(frozen=True)
class _Spec:
    """The standardized arguments the blocks are built from."""

    filters: list
    kernel_sizes: list
    strides: list
    activation: object
    output_activation: object
    normalization: object
    decoder_statistics: str
    decoder_style: str
    encoder_style: str
    kernel_initializer: object
    variational: bool
    latent_dim: object
    kl_weight: float
    dtype: object


@keras.saving.register_keras_serializable(package="keras_recursive_ae")
class MirroredConvStack(SymmetricAutoencoder):
    """A symmetric convolutional autoencoder, one conv block per level.

    Encoder level `k` is a `Conv2D` (`filters[k-1]` filters, kernel
    `kernel_sizes[k-1]`, stride `strides[k-1]`, "same" padding, `activation`),
    or with `encoder_style="pooling"` a stride-1 `Conv2D` followed by
    `MaxPooling2D` of the same stride. Decoder level `k` mirrors it: a
    `Conv2DTranspose` of stride `strides[k-1]` (or, with
    `decoder_style="upsampling"`, `UpSampling2D` then a `Conv2D`) with as
    many filters as `T_{k-1}` has channels; decoder level 1 produces the
    image with `output_activation`. Where an encoder level rounded an odd
    size up, its decoder level crops the extra row/column, so every decoder
    level restores the exact shape of the tensor it rebuilds, whatever the
    input size.

    Normalization ends every block except the output block (conv,
    activation, then the norm):
    - `None`: no normalization.
    - `"batch"`: a separate `BatchNormalization` in each block.
    - `"shared"`: one `SharedBatchNorm` per tensor level `T_k`, at its
      encoder site in `E_k` and its decoder site in `D_{k+1}`.

    Args:
        filters: filters per encoder level, outermost first, e.g.
            `(16, 32, 64)`. Leave `None` to give `base_filters` and `depth`.
        input_shape: shape of one input image, e.g. `(128, 128, 3)`.
        base_filters: filters of level 1 when `filters` is `None`; they
            double at every level.
        depth: number of levels when `filters` is `None`.
        kernel_sizes: one int (or `(h, w)` pair) for all levels, or one per
            level.
        strides: one int for all levels, or one per level.
        activation: activation of every block but the output block.
        output_activation: activation of decoder level 1.
        normalization: `None`, `"batch"` or `"shared"`.
        decoder_statistics: for `normalization="shared"`, the
            `SharedBatchNorm` argument of the same name.
        decoder_style: `"transpose"` (`Conv2DTranspose`) or `"upsampling"`
            (`UpSampling2D` + `Conv2D`).
        encoder_style: `"strided"` (strided `Conv2D`) or `"pooling"`
            (`Conv2D` + `MaxPooling2D`).
        kernel_initializer: initializer of every convolution kernel.
        variational: whether the innermost level is variational: its encoder
            block ends in a `VariationalBottleneck` (no normalization there)
            whose `latent_dim` code is `T_n`, and its decoder block starts
            with a `Dense` layer and a `Reshape` back to the convolution's
            output shape. Sample new images with
            `RecursiveTrainer.generate`.
        latent_dim: size of the variational code.
        kl_weight: weight of the KL loss of the variational code (see
            `VariationalBottleneck`), or `None` (default): `0.01` over the
            number of values of `T_{n-1}`, which the innermost level
            rebuilds, so that with a mean loss such as `"mse"` the KL term
            is on the reconstruction's scale and the codes do not collapse
            to the prior (`1.0`, the previous default, collapsed them).
        name: name of the assembled model.
        dtype: the dtype policy of every layer (e.g. `"mixed_bfloat16"`);
            `None` (default) takes the global policy at construction. It is
            saved with the stack, so a reloaded stack keeps it.

    Example:

    ```python
    from keras_recursive_ae import MirroredConvStack

    stack = MirroredConvStack(filters=(16, 32, 64), input_shape=(32, 32, 3),
                              normalization="shared")
    stack.shapes   # [(32, 32, 3), (16, 16, 16), (8, 8, 32), (4, 4, 64)]
    stack.summary()
    ```
    """

    def __init__(
        self,
        filters=None,
        input_shape=None,
        *,
        base_filters=None,
        depth=None,
        kernel_sizes=3,
        strides=2,
        activation="selu",
        output_activation="sigmoid",
        normalization=None,
        decoder_statistics="encoder",
        decoder_style="transpose",
        encoder_style="strided",
        kernel_initializer="glorot_uniform",
        variational=False,
        latent_dim=None,
        kl_weight=None,
        name="mirrored_conv_stack",
        dtype=None,
        **kwargs,
    ):
        if input_shape is None:
            raise ValueError(
                "Missing argument `input_shape`: the shape of one image, e.g. "
                "(128, 128, 3). Received: input_shape=None"
            )
        shape = list(standardize_input_shape(input_shape))
        if len(shape) != 3:
            raise ValueError(
                "Invalid value for argument `input_shape`. Expected (height, "
                f"width, channels). Received: input_shape={describe(input_shape)}"
            )
        filters = _standardize_filters(filters, base_filters, depth)
        normalization = check_choice(normalization, "normalization", _NORMALIZATIONS)
        decoder_style = check_choice(decoder_style, "decoder_style", _DECODER_STYLES)
        encoder_style = check_choice(encoder_style, "encoder_style", _ENCODER_STYLES)
        decoder_statistics = check_choice(
            decoder_statistics, "decoder_statistics", ("encoder", "batch")
        )
        if variational and latent_dim is None:
            raise ValueError(
                "A variational stack needs `latent_dim`, the size of its code. "
                "Received: variational=True, latent_dim=None"
            )
        spec = _Spec(
            filters=filters,
            kernel_sizes=_per_level(kernel_sizes, len(filters), "kernel_sizes", pair=True),
            strides=_per_level(strides, len(filters), "strides"),
            activation=_get(keras.activations.get, activation, "activation"),
            output_activation=_get(keras.activations.get, output_activation, "output_activation"),
            normalization=normalization,
            decoder_statistics=decoder_statistics,
            decoder_style=decoder_style,
            encoder_style=encoder_style,
            kernel_initializer=_get(
                keras.initializers.get, kernel_initializer, "kernel_initializer"
            ),
            variational=bool(variational),
            latent_dim=latent_dim,
            kl_weight=kl_weight,
            # Every layer takes the stack's policy (by default the global
            # one), so a saved stack reloads under it in any process.
            dtype=keras.dtype_policies.get(dtype) if dtype else keras.config.dtype_policy(),
        )
        encoder_blocks, decoder_blocks = _make_blocks(spec, tuple(shape))
        # === Functional Model ===
        super().__init__(
            encoder_blocks,
            decoder_blocks,
            shape,
            decoder_order="outermost_first",
            name=name,
            dtype=spec.dtype,
            **kwargs,
        )

        # === Config ===
        for field in dataclasses.fields(spec):
            if field.name != "dtype":  # Keras keeps that one: `dtype_policy`
                setattr(self, field.name, getattr(spec, field.name))
        self.base_filters = base_filters
        self._config = {
            "filters": list(spec.filters),
            "input_shape": shape,
            "kernel_sizes": [list(k) for k in spec.kernel_sizes],
            "strides": list(spec.strides),
            "activation": keras.activations.serialize(spec.activation),
            "output_activation": keras.activations.serialize(spec.output_activation),
            "normalization": normalization,
            "decoder_statistics": decoder_statistics,
            "decoder_style": decoder_style,
            "encoder_style": encoder_style,
            "kernel_initializer": keras.initializers.serialize(spec.kernel_initializer),
            "variational": spec.variational,
            "latent_dim": latent_dim,
            "kl_weight": kl_weight,
        }

    @classmethod
    def paper(cls, input_shape=(128, 128, 3), base_filters=16, depth=None, **kwargs):
        """The architecture of Ray & Hannon (2022), at any image size.

        Stride-2 "same" convolutions with SELU, kernel 5 at level 1 and 3
        elsewhere, filters doubling from `base_filters`; the decoder mirrors
        it with `Conv2DTranspose` and ends in the input's channels with a
        sigmoid. At the paper's 128x128x3 faces this is its network: 7
        levels, 16 to 1024 filters, a 1x1x1024 code. This is the one
        definition of the preset: the LFW experiment runner, the quickstart
        and the guides all build it here.

        Args:
            input_shape: `(height, width, channels)` of one image. Defaults
                to the paper's `(128, 128, 3)`.
            base_filters: Filters of level 1, doubling at every level.
                Defaults to `16` (the paper's).
            depth: Optional number of levels. Defaults to `None`: enough
                levels to bring the smaller side down to 1 (each level
                halves it, rounding up), at most 7: 7 at 128x128, 5 at
                32x32 and at 25x25, 4 at 16x16.
            **kwargs: Any other argument of `MirroredConvStack` (e.g.
                `normalization="shared"`, `activation="relu"`), overriding
                the preset's.

        Example:

        ```python
        from keras_recursive_ae import MirroredConvStack

        stack = MirroredConvStack.paper()          # 128x128x3 -> 1x1x1024
        stack = MirroredConvStack.paper(normalization="shared")
        small = MirroredConvStack.paper(input_shape=(32, 32, 3))
        small.shapes[-1]                           # (1, 1, 256): 5 levels
        ```
        """
        if depth is None:
            shape = input_shape if isinstance(input_shape, (tuple, list)) else ()
            side = min(shape[:2], default=None)
            if isinstance(side, int) and not isinstance(side, bool) and side >= 1:
                depth = max(1, min(7, math.ceil(math.log2(side))))
            else:  # The constructor reports the invalid `input_shape`.
                depth = 7
        options = {
            "kernel_sizes": [5] + [3] * (depth - 1),
            "strides": 2,
            "activation": "selu",
            "output_activation": "sigmoid",
            "name": "recursive_autoencoder",
        }
        options.update(kwargs)
        return cls(
            base_filters=base_filters,
            depth=depth,
            input_shape=input_shape,
            **options,
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **self._config,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _make_blocks(spec, input_shape):
    """Builds `E_k` and `D_k` as functional models on their own inputs."""
    shapes = [input_shape]
    for stride, filters in zip(spec.strides, spec.filters):
        height, width, _ = shapes[-1]
        shapes.append((math.ceil(height / stride), math.ceil(width / stride), filters))
    shared_norms = [
        _make_norm(spec, f"shared_norm_{k}") if spec.normalization == "shared" else None
        for k in range(1, len(shapes))
    ]

    encoder_blocks, decoder_blocks = [], []
    for k in range(1, len(shapes)):
        kernel, stride = spec.kernel_sizes[k - 1], spec.strides[k - 1]
        inputs = keras.Input(shapes[k - 1])
        x = keras.layers.Conv2D(
            spec.filters[k - 1],
            kernel,
            strides=1 if spec.encoder_style == "pooling" else stride,
            padding="same",
            activation=spec.activation,
            kernel_initializer=spec.kernel_initializer,
            name=f"encoder_conv_{k}",
            dtype=spec.dtype,
        )(inputs)
        if spec.encoder_style == "pooling" and stride > 1:
            x = keras.layers.MaxPooling2D(
                stride, padding="same", name=f"encoder_pool_{k}", dtype=spec.dtype
            )(x)
        innermost_variational = spec.variational and k == len(shapes) - 1
        if innermost_variational:
            x = VariationalBottleneck(
                spec.latent_dim,
                kl_weight=(
                    KL_SCALE / math.prod(shapes[k - 1])
                    if spec.kl_weight is None
                    else spec.kl_weight
                ),
                name="variational_bottleneck",
                dtype=spec.dtype,
            )(x)
        elif spec.normalization == "shared":
            x = shared_norms[k - 1](x, site="encoder")
        elif spec.normalization == "batch":
            x = _make_norm(spec, f"encoder_norm_{k}")(x)
        encoder_blocks.append(keras.Model(inputs, x, name=f"encoder_block_{k}"))

        target = shapes[k - 1]
        outermost = k == 1
        conv_options = {
            "padding": "same",
            "activation": spec.output_activation if outermost else spec.activation,
            "kernel_initializer": spec.kernel_initializer,
            "name": f"decoder_conv_{k}",
            "dtype": spec.dtype,
        }
        if innermost_variational:
            inputs = keras.Input((spec.latent_dim,))
            x = keras.layers.Dense(
                math.prod(shapes[k]),
                activation=spec.activation,
                name="decoder_dense",
                dtype=spec.dtype,
            )(inputs)
            x = keras.layers.Reshape(shapes[k], name="decoder_reshape", dtype=spec.dtype)(x)
        else:
            inputs = x = keras.Input(shapes[k])
        if spec.decoder_style == "transpose":
            x = keras.layers.Conv2DTranspose(target[-1], kernel, strides=stride, **conv_options)(x)
        elif stride > 1:
            x = keras.layers.UpSampling2D(stride, name=f"decoder_upsample_{k}", dtype=spec.dtype)(x)
        excess = (x.shape[1] - target[0], x.shape[2] - target[1])
        if any(excess):
            # Undo the encoder's rounding up of an odd size ("same" padding).
            x = keras.layers.Cropping2D(
                ((0, excess[0]), (0, excess[1])), name=f"decoder_crop_{k}", dtype=spec.dtype
            )(x)
        if spec.decoder_style == "upsampling":
            x = keras.layers.Conv2D(target[-1], kernel, **conv_options)(x)
        if not outermost and spec.normalization == "shared":
            x = shared_norms[k - 2](x, site="decoder")
        elif not outermost and spec.normalization == "batch":
            x = _make_norm(spec, f"decoder_norm_{k}")(x)
        decoder_blocks.append(keras.Model(inputs, x, name=f"decoder_block_{k}"))
    return encoder_blocks, decoder_blocks


def _make_norm(spec, name):
    if spec.normalization == "shared":
        return SharedBatchNorm(
            decoder_statistics=spec.decoder_statistics, name=name, dtype=spec.dtype
        )
    return keras.layers.BatchNormalization(name=name, dtype=spec.dtype)


def _get(getter, identifier, name):
    """`keras.activations.get` and the like, with an error naming the argument."""
    try:
        value = getter(identifier)
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"Invalid value for argument `{name}`: {error} Received: {name}={describe(identifier)}"
        ) from error
    if value is None or not callable(value):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected the name or an "
            f"instance of one. Received: {name}={describe(identifier)}"
        )
    return value


def _standardize_filters(filters, base_filters, depth):
    if filters is None:
        if base_filters is None or depth is None:
            raise ValueError(
                "Pass either `filters` (one count per level) or both "
                "`base_filters` and `depth`. Received: filters=None, "
                f"base_filters={describe(base_filters)}, depth={describe(depth)}"
            )
        base_filters = check_int(base_filters, "base_filters", minimum=1)
        return [base_filters * 2**k for k in range(check_int(depth, "depth", minimum=1))]
    if base_filters is not None or depth is not None:
        raise ValueError(
            "Pass either `filters` or `base_filters` and `depth`, not both. "
            f"Received: filters={describe(filters)}, base_filters={describe(base_filters)}, "
            f"depth={describe(depth)}"
        )
    given = filters
    if isinstance(filters, int):
        filters = [filters]
    filters = list(filters) if isinstance(filters, (list, tuple)) else []
    if not filters or any(not isinstance(f, int) or isinstance(f, bool) or f <= 0 for f in filters):
        raise ValueError(
            "Invalid value for argument `filters`. Expected a non-empty "
            "sequence of strictly positive integers, one per level. "
            f"Received: filters={describe(given)}"
        )
    return filters


def _per_level(value, depth, name, pair=False):
    """One value per level from one value for all levels or a sequence."""

    def valid(item):
        if pair and isinstance(item, (tuple, list)):
            return len(item) == 2 and all(valid(i) for i in item)
        return isinstance(item, int) and not isinstance(item, bool) and item > 0

    if valid(value) and not isinstance(value, (tuple, list)):
        values = [value] * depth
    elif isinstance(value, (tuple, list)) and len(value) == depth and all(map(valid, value)):
        values = list(value)
    else:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a strictly "
            f"positive integer or a sequence of {depth} of them (one per "
            f"level). Received: {name}={describe(value)}"
        )
    if pair:
        return [tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in values]
    return values
