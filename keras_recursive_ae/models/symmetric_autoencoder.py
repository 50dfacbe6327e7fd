"""A symmetric encoder/decoder pair as one Keras graph, cut at its levels."""

import dataclasses
import functools
import re

import keras

from keras_recursive_ae.models.levels import (
    block_name,
    fold_weightless,
    is_graph_model,
    may_be_a_level,
)
from keras_recursive_ae.utils.arguments import check_choice
from keras_recursive_ae.utils.messages import describe

DECODER_ORDERS = ("innermost_first", "outermost_first")


def _plain(error):
    # Keras styles some messages with terminal escape codes.
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error))


def _shape(tensor):
    return tuple(tensor.shape[1:])


def call_block(block, inputs):
    """Calls `block` on symbolic `inputs`, inlining Keras graph models.

    The layers of a `Sequential` or functional block join the caller's graph
    instead of nesting the block as one layer. Nesting would make Keras
    serialize a `SharedBatchNorm` used by two blocks twice, which cannot be
    reloaded; a flat graph keeps the sharing through `.keras` files. A list
    of blocks (a level folded from several) is called block after block.
    """
    if isinstance(block, (list, tuple)):
        for part in block:
            inputs = call_block(part, inputs)
        return inputs
    if is_graph_model(block):
        return block.call(inputs)
    return block(inputs)


@keras.saving.register_keras_serializable(package="keras_recursive_ae")
class SymmetricAutoencoder(keras.Model):
    """A symmetric autoencoder whose levels can be trained one by one.

    Level `k` (1 = outermost) has an encoder block `E_k` and a decoder block
    `D_k`. With `T_0` the input and `T_k = E_k(T_{k-1})`, the autoencoder is
    `D_1(D_2(...D_n(T_n)))` and every `D_k` must map the shape of `T_k` back
    to the shape of `T_{k-1}`; this is checked here, level by level, before
    any training.

    It is a functional `keras.Model` (keras-hub's Backbone pattern: the
    object you configure is the object you train, save and load) over one
    flat graph: the layers of `Sequential` and functional blocks are
    inlined, any other layer or callable (a plain function of Keras tensors
    works too) is called as is. Its level views (`encoder`, `decoder`,
    `encoder_levels`, `decoder_levels`) share its layers and weights.

    Saving keeps that flat graph, with the place of every level in it, so a
    `SharedBatchNorm` that your `E_k` and `D_{k+1}` share is still one layer
    after `keras.saving.load_model` (which needs `import keras_recursive_ae`
    first, as for every class of the library). Serializing your blocks one
    by one would not keep it: Keras keeps layer sharing only inside one
    graph.

    Args:
        encoder_blocks: sequence of `E_1..E_n`, outermost first.
        decoder_blocks: sequence of `D_n..D_1` in the order the decoder
            runs: innermost first, the block that produces the image last
            (or `D_1..D_n` with `decoder_order="outermost_first"`).
        input_shape: shape of one input image, without the batch axis, e.g.
            `(128, 128, 3)`.
        decoder_order: `"innermost_first"` (default, as in
            `RecursiveTrainer`) or `"outermost_first"`.
        name: name of the model.
        **kwargs: other `keras.Model` arguments (`trainable`, `dtype`).

    Raises:
        ValueError: if the depths differ, a level fails on the tensor it
            receives, or a decoder level does not restore the shape of the
            tensor it rebuilds. The message names the level and the shapes.

    Example:

    ```python
    import keras
    from keras_recursive_ae import SymmetricAutoencoder

    layers = keras.layers
    autoencoder = SymmetricAutoencoder(
        encoder_blocks=[
            layers.Conv2D(8, 3, strides=2, padding="same", activation="selu"),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="selu"),
        ],
        decoder_blocks=[
            layers.Conv2DTranspose(8, 3, strides=2, padding="same",
                                   activation="selu"),
            layers.Conv2DTranspose(3, 3, strides=2, padding="same",
                                   activation="sigmoid"),
        ],
        input_shape=(32, 32, 3),
    )
    autoencoder.shapes   # [(32, 32, 3), (16, 16, 8), (8, 8, 16)]
    autoencoder.summary()
    ```
    """

    def __init__(
        self,
        encoder_blocks,
        decoder_blocks,
        input_shape,
        decoder_order="innermost_first",
        name="autoencoder",
        **kwargs,
    ):
        # === Levels ===
        encoder_blocks = list(encoder_blocks)
        decoder_blocks = list(decoder_blocks)
        decoder_order = check_choice(decoder_order, "decoder_order", DECODER_ORDERS)
        if decoder_order == "innermost_first":
            decoder_blocks = decoder_blocks[::-1]
        if not encoder_blocks:
            raise ValueError(
                f"The encoder needs at least one level. Received: encoder_blocks={encoder_blocks}"
            )
        levels = _build_levels(
            encoder_blocks, decoder_blocks[::-1], standardize_input_shape(input_shape)
        )
        self._init_graph(levels, name=name, **kwargs)

    def _init_graph(self, levels, **kwargs):
        # === Functional Model ===
        super().__init__(levels.encoded[0], levels.rebuilt[0], **kwargs)
        # A plain object, so that Keras does not track the blocks as sublayers
        # of their own (their layers are already the graph's).
        self._levels = levels

    @property
    def depth(self):
        """The number of levels `n`."""
        return len(self._levels.encoder_blocks)

    @property
    def shapes(self):
        """Shapes of `T_0..T_n` (without the batch axis)."""
        return [_shape(t) for t in self._levels.encoded]

    @property
    def encoder_blocks(self):
        """The blocks of `E_1..E_n` (a list for a level folded from several)."""
        return list(self._levels.encoder_blocks)

    @property
    def decoder_blocks(self):
        """The blocks of `D_1..D_n`, outermost first."""
        return list(self._levels.decoder_blocks)

    # The views are built once, on first use, and kept outside Keras'
    # tracking (`cached_property` writes the instance's `__dict__`).
    @functools.cached_property
    def encoder(self):
        """The encoder, images -> `T_n`: a functional model on the same layers."""
        return keras.Model(self.inputs[0], self._levels.encoded[-1], name=f"{self.name}_encoder")

    @functools.cached_property
    def decoder(self):
        """The decoder, `T_n` -> images: a functional model on the same layers."""
        encoded = self._levels.encoded[-1]
        return keras.Model(encoded, self.outputs[0], name=f"{self.name}_decoder")

    @functools.cached_property
    def encoder_levels(self):
        """`E_1..E_n`, each a functional model `T_{k-1} -> T_k`."""
        encoded = self._levels.encoded
        return [
            keras.Model(encoded[k - 1], encoded[k], name=f"encoder_level_{k}")
            for k in range(1, self.depth + 1)
        ]

    @functools.cached_property
    def decoder_levels(self):
        """`D_1..D_n`, each a functional model `T_k -> T_{k-1}` (decoder side)."""
        rebuilt = self._levels.rebuilt
        return [
            keras.Model(rebuilt[k], rebuilt[k - 1], name=f"decoder_level_{k}")
            for k in range(1, self.depth + 1)
        ]

    @staticmethod
    def check_depths(encoder_blocks, decoder_blocks, decoder_order="innermost_first"):
        """Raises if the pair clearly cannot have the same depth, before any shape is known.

        Blocks without weights fold into a neighbouring level, which only
        building tells for a layer not built yet: a pair with a block known
        to be weightless is not judged here, but once built.
        """
        blocks = list(encoder_blocks) + list(decoder_blocks)
        if not all(may_be_a_level(b) for b in blocks):
            return
        if decoder_order == "innermost_first":
            decoder_blocks = list(decoder_blocks)[::-1]
        _check_same_depth(list(encoder_blocks), list(decoder_blocks))

    def encoder_prefix(self, level):
        """The encoder up to `T_level`: a model from the images to `T_level`."""
        encoded = self._levels.encoded
        return keras.Model(encoded[0], encoded[level], name=f"encoder_to_level_{level}")

    def level_tensors_model(self):
        """A model from the images to `[R_0..R_{n-1}, T_1..T_{n-1}]`.

        `R_k` is the decoder's tensor at level `k` (`R_0` the reconstructed
        image) and `T_k` the encoder's: with the image itself, the pairs
        `(R_{k-1}, T_{k-1})` that a loss at every level compares.
        """
        levels, depth = self._levels, self.depth
        return keras.Model(
            levels.encoded[0],
            levels.rebuilt[:depth] + levels.encoded[1:depth],
            name=f"{self.name}_level_tensors",
        )

    def encoder_level_layers(self, level):
        """The layers that `E_level` owns (Keras layers, nested ones included)."""
        return owned_layers(self.encoder_levels[level - 1])

    def decoder_level_layers(self, level):
        """The layers that `D_level` calls (some may be owned by an encoder level)."""
        return owned_layers(self.decoder_levels[level - 1])

    def get_config(self):
        # The flat graph with every level's tensors as outputs, as Keras
        # serializes a functional model: shared layers stay shared.
        levels, depth = self._levels, self.depth
        graph = keras.Model(self.inputs[0], levels.rebuilt[:depth] + levels.encoded[1:])
        return {
            "name": self.name,
            "trainable": self.trainable,
            "levels_graph": graph.get_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        graph = keras.Model.from_config(config.pop("levels_graph"))
        depth = (len(graph.outputs) + 1) // 2
        rebuilt = graph.outputs[:depth] + [graph.outputs[-1]]
        encoded = graph.inputs[:1] + graph.outputs[depth:]
        # The revived graph is the model's: its level views are the blocks.
        levels = _Levels(
            [keras.Model(encoded[k - 1], encoded[k]) for k in range(1, depth + 1)],
            [keras.Model(rebuilt[k], rebuilt[k - 1]) for k in range(1, depth + 1)],
            encoded,
            rebuilt,
        )
        autoencoder = cls.__new__(cls)
        autoencoder._init_graph(levels, **config)
        return autoencoder


@dataclasses.dataclass(frozen=True)
class _Levels:
    """The blocks of every level and the graph's tensors at its ends."""

    encoder_blocks: list
    decoder_blocks: list  # outermost first
    encoded: list  # T_0..T_n
    rebuilt: list  # R_0..R_n: the decoder's tensors, R_n = T_n


def _build_levels(encoder_blocks, decoder_blocks, input_shape):
    """Calls every block once, in running order, and cuts the graph into levels.

    Levels are cut where a block with weights starts (weightless blocks fold
    in). `decoder_blocks` are in running order: innermost first.
    """
    images = keras.Input(shape=input_shape, name="images")
    outputs = [images]
    for index, block in enumerate(encoder_blocks):
        level = _level_so_far(encoder_blocks[: index + 1])
        source = outputs[-1]
        try:
            output = call_block(block, source)
        except Exception as error:
            raise ValueError(
                f"Encoder level {level} ('{block_name(block)}') failed on "
                f"T_{level - 1} of shape {_shape(source)}: {_plain(error)}"
            ) from error
        outputs.append(_single_tensor(output, "Encoder", level, block))
    encoder_groups, ends = fold_weightless(encoder_blocks, "Encoder")
    encoded = [images] + [outputs[end] for end in ends]

    depth = len(encoder_groups)
    rebuilt_outputs = [encoded[-1]]
    for index, block in enumerate(decoder_blocks):
        # The level this block starts, if it has weights.
        level = max(1, depth - sum(map(may_be_a_level, decoder_blocks[:index])))
        source = rebuilt_outputs[-1]
        try:
            output = call_block(block, source)
        except Exception as error:
            # Likelier than a bad block: a decoder shorter than the encoder,
            # or a level before this one that returned the wrong shape.
            SymmetricAutoencoder.check_depths(encoder_groups, decoder_blocks)
            if index > 0 and level < depth and _shape(source) != _shape(encoded[level]):
                raise ValueError(
                    f"Decoder level {level + 1} "
                    f"('{block_name(decoder_blocks[index - 1])}') "
                    f"must map T_{level + 1} of shape {_shape(encoded[level + 1])} back to the "
                    f"shape of T_{level}, {_shape(encoded[level])}. Received output shape "
                    f"{_shape(source)}."
                ) from error
            raise ValueError(
                f"Decoder level {level} ('{block_name(block)}') must map T_{level} of "
                f"shape {_shape(encoded[level])} back to the shape of T_{level - 1}, "
                f"{_shape(encoded[level - 1])}, but calling it failed: {_plain(error)}"
            ) from error
        rebuilt_outputs.append(_single_tensor(output, "Decoder", level, block))
    decoder_groups, ends = fold_weightless(decoder_blocks, "Decoder")
    decoder_groups = decoder_groups[::-1]  # outermost first, as the encoder's
    _check_same_depth(encoder_groups, decoder_groups)
    # rebuilt[k] is the decoder's tensor at level k: T_n, then D_n(T_n)...
    rebuilt = [None] * depth + [encoded[-1]]
    for level, group, end in zip(range(depth, 0, -1), decoder_groups[::-1], ends):
        output, target = rebuilt_outputs[end], encoded[level - 1]
        name = block_name(group)
        if _shape(output) != _shape(target):
            raise ValueError(
                f"Decoder level {level} ('{name}') must map T_{level} of shape "
                f"{_shape(encoded[level])} back to the shape of T_{level - 1}, "
                f"{_shape(target)}. Received output shape {_shape(output)}."
            )
        if not _same_kind_of_dtype(output.dtype, target.dtype, exact=level > 1):
            raise ValueError(
                f"Decoder level {level} ('{name}') must rebuild T_{level - 1} "
                f"in its dtype, {target.dtype}. Received output dtype {output.dtype}."
            )
        rebuilt[level - 1] = output
    return _Levels(encoder_groups, decoder_groups, encoded, rebuilt)


def owned_layers(view):
    """The layers of a model, those of its nested models included (each once)."""
    found = {}
    pending = [layer for layer in view.layers if not isinstance(layer, keras.layers.InputLayer)]
    while pending:
        layer = pending.pop()
        found[id(layer)] = layer
        pending.extend(getattr(layer, "layers", []))  # the layers of a nested model
    return list(found.values())


def _check_same_depth(encoder, decoder):
    if len(encoder) != len(decoder):
        raise ValueError(
            "The encoder and the decoder must have the same number of "
            f"levels. Received: {len(encoder)} encoder levels "
            f"({[block_name(b) for b in encoder]}) and "
            f"{len(decoder)} decoder levels "
            f"({[block_name(b) for b in decoder]})."
        )


def _level_so_far(blocks):
    """The level of the last of `blocks` (in running order), if it has weights."""
    return max(1, sum(map(may_be_a_level, blocks)))


def _same_kind_of_dtype(output, target, exact):
    # The image may be float32 while a mixed-precision model rebuilds it in
    # float16; inner tensors are produced by the same policy on both sides.
    if exact:
        return output == target
    floating = [keras.backend.is_float_dtype(d) for d in (output, target)]
    return floating[0] == floating[1]


def _single_tensor(output, side, level, block):
    if not isinstance(output, keras.KerasTensor):
        raise ValueError(
            f"{side} level {level} ('{block_name(block)}') must return one "
            f"tensor. Received: {describe(output)}"
        )
    return output


def standardize_input_shape(input_shape):
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected the shape of "
            "one image without the batch axis, with strictly positive sizes, "
            f"e.g. (128, 128, 3). Received: input_shape={describe(input_shape)}"
        )
    return shape
