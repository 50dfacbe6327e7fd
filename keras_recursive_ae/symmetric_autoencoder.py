"""A symmetric encoder/decoder pair as one Keras graph, cut at its levels."""

import keras

_DECODER_ORDERS = ("innermost_first", "outermost_first")


def _block_name(block):
    return getattr(block, "name", None) or getattr(block, "__name__", None) or repr(block)


def _shape(tensor):
    return tuple(tensor.shape[1:])


def call_block(block, inputs):
    """Calls `block` on symbolic `inputs`, inlining Keras graph models.

    The layers of a `Sequential` or functional block join the caller's graph
    instead of nesting the block as one layer. Nesting would make Keras
    serialize a `SharedBatchNorm` used by two blocks twice, which cannot be
    reloaded; a flat graph keeps the sharing through `.keras` files.
    """
    if isinstance(block, keras.Sequential) or type(block).__name__ == "Functional":
        return block.call(inputs)
    return block(inputs)


class SymmetricAutoencoder:
    """A symmetric autoencoder whose levels can be trained one by one.

    Level `k` (1 = outermost) has an encoder block `E_k` and a decoder block
    `D_k`. With `T_0` the input and `T_k = E_k(T_{k-1})`, the autoencoder is
    `D_1(D_2(...D_n(T_n)))` and every `D_k` must map the shape of `T_k` back
    to the shape of `T_{k-1}`; this is checked here, level by level, before
    any training.

    All blocks are called in one flat Keras graph: the layers of
    `Sequential` and functional blocks are inlined, any other layer or
    callable (a plain function of Keras tensors works too) is called as is.
    That graph is the single source of truth: `model`, `encoder`, `decoder`
    and the per-level views share its layers and weights.

    Args:
        encoder_blocks: sequence of `E_1..E_n`, outermost first.
        decoder_blocks: sequence of `D_1..D_n`, outermost first (`D_1`
            produces the image), unless `decoder_order="innermost_first"`.
        input_shape: shape of one input image, without the batch axis, e.g.
            `(128, 128, 3)`.
        decoder_order: `"outermost_first"` (default here) or
            `"innermost_first"` (the order in which the decoder runs).
        name: name of the assembled model.

    Raises:
        ValueError: if the depths differ, a level fails on the tensor it
            receives, or a decoder level does not restore the shape of the
            tensor it rebuilds. The message names the level and the shapes.

    Example:

    ```python
    import keras
    from keras_recursive_ae import SymmetricAutoencoder

    layers = keras.layers
    pair = SymmetricAutoencoder(
        encoder_blocks=[
            layers.Conv2D(8, 3, strides=2, padding="same", activation="selu"),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="selu"),
        ],
        decoder_blocks=[
            layers.Conv2DTranspose(3, 3, strides=2, padding="same",
                                   activation="sigmoid"),
            layers.Conv2DTranspose(8, 3, strides=2, padding="same",
                                   activation="selu"),
        ],
        input_shape=(32, 32, 3),
    )
    pair.model.summary()
    ```
    """

    def __init__(
        self,
        encoder_blocks,
        decoder_blocks,
        input_shape,
        decoder_order="outermost_first",
        name="autoencoder",
    ):
        encoder_blocks = list(encoder_blocks)
        decoder_blocks = list(decoder_blocks)
        if decoder_order not in _DECODER_ORDERS:
            raise ValueError(
                "Invalid value for argument `decoder_order`. Expected one of "
                f"{_DECODER_ORDERS}. Received: decoder_order={decoder_order!r}"
            )
        if decoder_order == "innermost_first":
            decoder_blocks = decoder_blocks[::-1]
        if not encoder_blocks:
            raise ValueError(
                "The encoder needs at least one level. "
                f"Received: encoder_blocks={encoder_blocks}"
            )
        if len(encoder_blocks) != len(decoder_blocks):
            raise ValueError(
                "The encoder and the decoder must have the same number of "
                f"levels. Received: {len(encoder_blocks)} encoder levels "
                f"({[_block_name(b) for b in encoder_blocks]}) and "
                f"{len(decoder_blocks)} decoder levels "
                f"({[_block_name(b) for b in decoder_blocks]})."
            )
        self.input_shape = _standardize_input_shape(input_shape)
        self.encoder_blocks = encoder_blocks
        self.decoder_blocks = decoder_blocks
        self.name = name
        self._build_graph()

    @property
    def depth(self):
        """The number of levels `n`."""
        return len(self.encoder_blocks)

    @property
    def shapes(self):
        """Shapes of `T_0..T_n` (without the batch axis)."""
        return [_shape(t) for t in self._encoder_tensors]

    def _build_graph(self):
        images = keras.Input(shape=self.input_shape, name="images")
        encoded = [images]
        for k, block in enumerate(self.encoder_blocks, start=1):
            source = encoded[-1]
            try:
                output = call_block(block, source)
            except Exception as error:
                raise ValueError(
                    f"Encoder level {k} ('{_block_name(block)}') failed on "
                    f"T_{k - 1} of shape {_shape(source)}: {error}"
                ) from error
            encoded.append(_single_tensor(output, "Encoder", k, block))

        # rebuilt[k] is the decoder's tensor at level k: T_n, then D_n(T_n)...
        rebuilt = [None] * self.depth + [encoded[-1]]
        for k in range(self.depth, 0, -1):
            block = self.decoder_blocks[k - 1]
            target = encoded[k - 1]
            expectation = (
                f"Decoder level {k} ('{_block_name(block)}') must map T_{k} of "
                f"shape {_shape(encoded[k])} back to the shape of T_{k - 1}, "
                f"{_shape(target)}"
            )
            try:
                output = call_block(block, rebuilt[k])
            except Exception as error:
                raise ValueError(f"{expectation}, but calling it failed: {error}") from error
            output = _single_tensor(output, "Decoder", k, block)
            if _shape(output) != _shape(target):
                raise ValueError(
                    f"{expectation}. Received output shape {_shape(output)}."
                )
            rebuilt[k - 1] = output

        self._encoder_tensors = encoded
        self._decoder_tensors = rebuilt
        self.model = keras.Model(images, rebuilt[0], name=self.name)
        self.encoder = keras.Model(images, encoded[-1], name=f"{self.name}_encoder")
        self.decoder = keras.Model(encoded[-1], rebuilt[0], name=f"{self.name}_decoder")
        self.encoder_levels = [
            keras.Model(encoded[k - 1], encoded[k], name=f"encoder_level_{k}")
            for k in range(1, self.depth + 1)
        ]
        self.decoder_levels = [
            keras.Model(rebuilt[k], rebuilt[k - 1], name=f"decoder_level_{k}")
            for k in range(1, self.depth + 1)
        ]

    def encoder_prefix(self, level):
        """The encoder up to `T_level`: a model from the images to `T_level`."""
        return keras.Model(
            self._encoder_tensors[0],
            self._encoder_tensors[level],
            name=f"encoder_to_level_{level}",
        )

    def level_tensors_model(self):
        """A model from the images to `[R_0..R_{n-1}, T_1..T_{n-1}]`.

        `R_k` is the decoder's tensor at level `k` (`R_0` the reconstructed
        image) and `T_k` the encoder's: with the image itself, the pairs
        `(R_{k-1}, T_{k-1})` that a loss at every level compares.
        """
        return keras.Model(
            self._encoder_tensors[0],
            self._decoder_tensors[: self.depth] + self._encoder_tensors[1 : self.depth],
            name=f"{self.name}_level_tensors",
        )

    def encoder_level_layers(self, level):
        """The layers that `E_level` owns (Keras layers, nested ones included)."""
        return _owned_layers(self.encoder_levels[level - 1])

    def decoder_level_layers(self, level):
        """The layers that `D_level` calls (some may be owned by an encoder level)."""
        return _owned_layers(self.decoder_levels[level - 1])


def _owned_layers(view):
    found = {}
    for layer in view.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        # `_flatten_layers` is how Keras itself walks nested layers
        # (`Layer.trainable` uses it); Keras has no public equivalent.
        for sublayer in layer._flatten_layers(include_self=True, recursive=True):
            found[id(sublayer)] = sublayer
    return list(found.values())


def _single_tensor(output, side, level, block):
    if not isinstance(output, keras.KerasTensor):
        raise ValueError(
            f"{side} level {level} ('{_block_name(block)}') must return one "
            f"tensor. Received: {type(output).__name__} {output!r}"
        )
    return output


def _standardize_input_shape(input_shape):
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected the shape of "
            "one image without the batch axis, with strictly positive sizes, "
            f"e.g. (128, 128, 3). Received: input_shape={input_shape!r}"
        )
    return shape
