"""Cutting a user's encoder or decoder into levels."""

import warnings

import keras

# Layers that corrupt their input in training only (SpatialDropout subclasses Dropout).
NOISE_LAYERS = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.GaussianNoise,
)
DROPOUT_LAYERS = NOISE_LAYERS  # the name before the noise layers joined
# Activations whose outputs are zero over half their input range: a level ending
# in one hands the next greedy stage a sparse target (measured in
# docs/schedules.md, "Users' pairs").
RELU_FAMILY = ("relu", "relu6")
# The smallest input, height x width, on which greedy training beat end to end at
# equal wall time (128x128; it lost on every smaller input measured, docs/schedules.md,
# "Which schedule to pick").
SMALL_INPUT_PIXELS = 128 * 128
# Layers after which a level's output is no longer an activation's.
_NORMALIZATIONS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
)


def levels_of(model, argument):
    """The blocks of `model`, one per layer or nested model, in running order.

    Args:
        model: a `keras.Sequential`, a list of blocks, or a functional
            `keras.Model` whose graph is a single chain of layers.
        argument: the argument's name, for error messages.

    Raises:
        TypeError: for anything else (a subclassed model, a branching graph),
            saying how to express levels.
    """
    if isinstance(model, (list, tuple)):
        return list(model)
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if isinstance(model, keras.Model) and is_graph_model(model):
        return _chain(model, argument)
    hint = "A subclassed model hides its levels: pass its blocks as a list."
    if isinstance(model, keras.Model) and _has_halves(model):
        hint = (
            "A subclassed model hides its levels, but this one has `encoder` and "
            "`decoder` attributes: if they are its two halves (each a "
            "keras.Sequential, a list of blocks or a functional chain), pass them: "
            "`RecursiveTrainer(model.encoder, model.decoder)`. Otherwise pass its "
            "blocks as a list."
        )
    raise TypeError(
        f"Expected `{argument}` to be a keras.Sequential, a list of blocks (one "
        "per level), or a functional keras.Model whose layers form a single "
        "chain; or `encoder` to be a MirroredConvStack or a "
        f"SymmetricAutoencoder. Received: {argument} of type {type(model).__name__}. "
        f"{hint}"
    )


def _has_halves(model):
    """Whether `model` has `encoder` and `decoder` attributes holding layers or models."""
    try:
        halves = (getattr(model, "encoder", None), getattr(model, "decoder", None))
    except Exception:  # a property that fails
        return False
    return all(isinstance(half, (keras.layers.Layer, list, tuple)) for half in halves)


def is_graph_model(block):
    """Whether `block` is a `Sequential` or functional model (a graph of layers)."""
    if not isinstance(block, keras.Model):
        return False
    try:
        return bool(block.outputs)  # subclassed models have none
    except (AttributeError, ValueError):
        return False


def _chain(model, argument):
    """The top-level layers of a functional model whose graph is one chain."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        hint = ""
        if len(model.outputs) > 1 and argument != "decoder":
            hint = (
                " Several outputs, such as a variational encoder's `[z_mean, "
                "z_log_var, z]`, have no one tensor to train the next level on: end "
                "the encoder's last level with "
                "`keras_recursive_ae.VariationalBottleneck(latent_dim)` instead (one "
                "output, the code; it samples it and adds the KL loss itself), or "
                "build the whole network with `MirroredConvStack(..., "
                "variational=True, latent_dim=...)`."
            )
        raise TypeError(
            f"Expected `{argument}` to have one input and one output. Received a "
            f"model with {len(model.inputs)} inputs and {len(model.outputs)} outputs."
            f"{hint}"
        )
    tensor = model.inputs[0]
    blocks = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in blocks:
        try:
            follows = layer.input is tensor
        except (AttributeError, ValueError):  # a layer called more than once
            follows = False
        if not follows:
            raise TypeError(
                f"Expected `{argument}` to be a single chain of layers, each "
                f"taking the previous one's output, but layer '{layer.name}' "
                "does not. Branching graphs have no levels to train one by one: "
                "express the levels as a list of blocks (each block may be a "
                "functional model of its own)."
            )
        tensor = layer.output
    return blocks


def has_weights(block):
    """Whether a built block owns any weight."""
    return bool(getattr(block, "weights", None))


def fold_weightless(blocks, side):
    """Groups blocks into levels: each weightless block joins its neighbour.

    A weightless block (Flatten, Reshape, Dropout alone, a plain function)
    joins the level before it in running order; weightless blocks before the
    first weighted one join that one.

    Args:
        blocks: the blocks, built, in running order.
        side: `"Encoder"` or `"Decoder"`, for the error message.

    Returns:
        `(groups, ends)`: the blocks of each level, and for each level the
        number of blocks up to its end (so `outputs[end - 1]` is its output).

    Raises:
        ValueError: if no block has weights.
    """
    weighted = [i for i, block in enumerate(blocks) if has_weights(block)]
    if not weighted:
        names = [block_name(b) for b in blocks]
        raise ValueError(
            f"{side} level blocks {names} have no weights: there is nothing to "
            "train. Every level needs at least one layer with weights."
        )
    starts = [0] + weighted[1:]
    ends = weighted[1:] + [len(blocks)]
    groups = [blocks[start:end] for start, end in zip(starts, ends)]
    return [group[0] if len(group) == 1 else group for group in groups], ends


def may_be_a_level(block):
    """Whether `block` may have weights once built (false for built weightless layers)."""
    if not isinstance(block, keras.layers.Layer):
        return False
    return not block.built or has_weights(block)


def block_name(block):
    if isinstance(block, (list, tuple)):
        return "+".join(block_name(b) for b in block)
    return getattr(block, "name", None) or getattr(block, "__name__", None) or repr(block)


def running_layers(block):
    """The layers of a block (a layer, a list, a nested model) in running order."""
    if isinstance(block, (list, tuple)):
        return [layer for part in block for layer in running_layers(part)]
    if isinstance(block, keras.layers.InputLayer):
        return []
    nested = getattr(block, "layers", None)
    if isinstance(block, keras.Model) and nested is not None:
        return [layer for part in nested for layer in running_layers(part)]
    return [block]


def output_activation(block):
    """The name of the activation that produces a block's output, or `None`.

    Read backwards through layers that keep an activation's zeros (pooling,
    dropout, reshaping, padding...): e.g. `"relu"` for `Conv2D(relu) ->
    MaxPooling2D`. `None` when the output is a normalization's or a linear
    map's.
    """
    for layer in reversed(running_layers(block)):
        if isinstance(layer, _NORMALIZATIONS) or "Norm" in type(layer).__name__:
            return None
        if isinstance(layer, keras.layers.ReLU):
            return "relu" if not float(layer.negative_slope) else "leaky_relu"
        for kind, name in (
            (keras.layers.LeakyReLU, "leaky_relu"),
            (keras.layers.ELU, "elu"),
            (keras.layers.PReLU, "prelu"),
            (keras.layers.Softmax, "softmax"),
        ):
            if isinstance(layer, kind):
                return name
        activation = getattr(layer, "activation", None)
        if callable(activation):
            name = getattr(activation, "__name__", type(activation).__name__)
            if name != "linear":
                return name
        if has_weights(layer) or (
            callable(activation) and not isinstance(layer, keras.layers.Activation)
        ):  # a linear map (Dense, Conv) ends the level
            return None
    return None


def _noise_fix(layer):
    """The `corruption=` that does what `layer` does, written out."""
    if isinstance(layer, keras.layers.GaussianNoise):
        return f"keras.layers.GaussianNoise({layer.stddev:g})"
    if isinstance(layer, keras.layers.GaussianDropout):
        return f"keras.layers.GaussianDropout({layer.rate:g})"
    if isinstance(layer, keras.layers.AlphaDropout):
        return f"keras.layers.AlphaDropout({layer.rate:g})"
    return f"keras.layers.Dropout({layer.rate:g})"


def greedy_warnings(autoencoder):
    """What makes greedy training of `autoencoder` lose, as messages (a list of strings).

    Three causes, each measured (docs/schedules.md, "Which schedule to pick",
    "Why greedy can lose" and "Users' pairs: when greedy loses, and what the
    library says"):

    - noise layers (`Dropout`, `GaussianDropout`, `AlphaDropout`,
      `GaussianNoise`) in any level: each stage fits its own noisy output to
      a clean target, and the stages' errors compound;
    - levels whose output tensor `T_1..T_{n-1}` (the inner stages' targets)
      comes out of a ReLU: sparse, with dead units the next stage cannot
      rebuild, and errors that compound through the frozen decoders;
    - small inputs (see `small_input`): anything but an image of at least
      128x128 pixels, where greedy lost at equal wall time in every
      measurement, fine-tuning or not.
    """
    messages = []
    depth = autoencoder.depth
    noisy = []
    for side, layers_of in (
        ("encoder", autoencoder.encoder_level_layers),
        ("decoder", autoencoder.decoder_level_layers),
    ):
        for level in range(1, depth + 1):
            found = [layer for layer in layers_of(level) if isinstance(layer, NOISE_LAYERS)]
            if found:
                noisy.append((f"{side} level {level}", found[0]))
    if noisy:
        names = sorted({type(layer).__name__ for _, layer in noisy})
        messages.append(
            f"{', '.join(where for where, _ in noisy)} contain {' and '.join(names)}. Under "
            "schedule='greedy' each stage fits a level's noisy output to a clean target, "
            "and the stages' errors compound through the frozen decoders: on LFW at 32x32 "
            "Dropout made greedy's held-out error 2.4 times larger, and keras-io's denoising "
            "pair with GaussianNoise(0.2) in its encoder rebuilt clean digits worse than the "
            "noisy input itself, MSE 0.031 against 0.025, where end to end reached 0.012 in "
            "the same wall time (3 seeds; docs/schedules.md, 'Users' pairs: when greedy "
            "loses, and what the library says'). Use schedule='end_to_end', or "
            "fit(..., fine_tune_epochs=N) (0.021 there), or remove the noise for greedy "
            f"training. RecursiveTrainer(..., corruption={_noise_fix(noisy[0][1])}) "
            "corrupts every stage's input T_{k-1}, not only the image: it did worse there "
            "(0.043)."
        )
    sparse = [
        level
        for level in range(1, depth)
        if output_activation(autoencoder.encoder_blocks[level - 1]) in RELU_FAMILY
    ]
    if sparse:
        levels = ", ".join(f"T_{level}" for level in sparse)
        which = "level" if len(sparse) == 1 else "levels"
        ends = "ends" if len(sparse) == 1 else "end"
        messages.append(
            f"Encoder {which} {', '.join(map(str, sparse))} {ends} in a ReLU, so {levels}, "
            "the targets of the greedy stages after them, are sparse (dead units included), "
            "and the stages' errors compound through the frozen decoders: on TensorFlow's "
            "dense anomaly detector (digits, 3 seeds) greedy's mean ROC AUC was 0.874 "
            "against end to end's 0.972 in the same wall time, 0.955 with SELU "
            "(docs/schedules.md, 'Users' pairs: when greedy loses, and what the library "
            "says'). Use schedule='end_to_end', or activation='selu' (or 'elu') in the "
            "inner levels, or fit(..., fine_tune_epochs=N) (0.931 there)."
        )
    small = small_input(autoencoder.shapes[0])
    if small:
        messages.append(
            f"The input is {small} (input_shape={autoencoder.shapes[0]}). On inputs smaller "
            "than a 128x128 image, greedy training lost to schedule='end_to_end' given the "
            "same wall time in every measurement of the library (3 seeds each): the paper's "
            "network on LFW faces at 64x64 (sum of squared error per image 299 against 147 "
            "on 2,000 faces, 116.7 against 89.2 on 4,000) and at 32x32 (29.3 against 17.9), "
            "a variational MirroredConvStack at 32x32 (MSE 0.028 against 0.011), and "
            "TensorFlow's anomaly detector on 64-value digits with SELU (ROC AUC 0.955 "
            "against 0.966). Greedy + fine-tuning lost too wherever end to end was given "
            "its time (140 against 108 at 64x64). At 128x128 greedy won (265 against 729). "
            "A greedy epoch costs more time than an end-to-end one, and end to end trains "
            "a small network's levels well on its own. For the lowest error in a given "
            "time use schedule='end_to_end'; fit(..., fine_tune_epochs=N) keeps greedy's "
            "start and narrows the gap (docs/schedules.md, 'Which schedule to pick')."
        )
    return messages


def small_input(shape):
    """How `shape` (one input, no batch axis) falls short of a 128x128 image, or `None`.

    `"64x64"` for an image whose height x width is below 128 * 128 (its
    spatial axes read as `keras.config.image_data_format()` says: the two
    before the channels, or after them for `"channels_first"`), `"a vector
    of 64 values"` for `(64,)`, `"an array of 2 axes, not a (height, width,
    channels) image"` for `(28, 28)` or a sequence. `None` for an image of at least
    128x128 pixels, or when its height or width is unknown.
    """
    shape = tuple(shape)
    if len(shape) == 1:
        return f"a vector of {shape[0]} values"
    if len(shape) < 3:
        return f"an array of {len(shape)} axes, not a (height, width, channels) image"
    if keras.config.image_data_format() == "channels_first":
        height, width = shape[-2:]
    else:
        height, width = shape[-3:-1]
    if height is None or width is None or height * width >= SMALL_INPUT_PIXELS:
        return None
    return f"{height}x{width}"


# Activations whose outputs are in [0, 1], the targets a probability loss expects.
PROBABILITY_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "softmax")


def inner_loss_warning(autoencoder, loss):
    """A message when `loss` expects targets in [0, 1] that the inner levels' are not, or `None`.

    Greedy stages `2..n` (and joint's inner terms) take `T_1..T_{n-1}` as
    targets. Binary cross-entropy (`"binary_crossentropy"`,
    `"binary_focal_crossentropy"`, their `Loss` classes) expects targets in
    [0, 1] and clips predictions to it: on an encoder level that does not end
    in a sigmoid (or softmax) its minimum is not at the target.
    """
    loss = keras.losses.get(loss)
    probability_losses = (keras.losses.BinaryCrossentropy, keras.losses.BinaryFocalCrossentropy)
    if not isinstance(loss, probability_losses) and loss not in (
        keras.losses.binary_crossentropy,
        keras.losses.binary_focal_crossentropy,
    ):
        return None
    unbounded = {
        level: output_activation(autoencoder.encoder_blocks[level - 1]) or "linear"
        for level in range(1, autoencoder.depth)
    }
    unbounded = {k: name for k, name in unbounded.items() if name not in PROBABILITY_ACTIVATIONS}
    if not unbounded:
        return None
    name = getattr(loss, "name", None) or loss.__name__
    levels = ", ".join(f"{k} ({activation})" for k, activation in unbounded.items())
    tensors = ", ".join(f"T_{k}" for k in unbounded)
    return (
        f"loss={name!r} expects targets in [0, 1], but the inner stages' targets {tensors}, "
        f"the outputs of encoder levels {levels}, can leave it: binary cross-entropy "
        "clips the prediction to [0, 1], so a target outside it is never rebuilt (the "
        "loss is lowest at the clip, and clipped values get no gradient). Use "
        "loss='mse', or schedule='end_to_end' (only the image is a target), or end "
        "those encoder levels in a sigmoid."
    )


class GreedyTrainingWarning(UserWarning):
    """Level-wise training of this autoencoder is likely to do badly, and why.

    Warned before training: by the trainer for the causes of
    `greedy_warnings` (where greedy lost to end to end when measured), and
    by `fit` for a loss the inner levels' targets do not suit
    (`inner_loss_warning`).

    Example:

    ```python
    import warnings

    from keras_recursive_ae import GreedyTrainingWarning, MirroredConvStack, RecursiveTrainer

    stack = MirroredConvStack(filters=(4, 8), input_shape=(32, 32, 3))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        RecursiveTrainer(stack)     # greedy lost below 128x128 where measured
    seen[0].category                # GreedyTrainingWarning: "The input is 32x32 ..."

    # To train greedily anyway, without the messages:
    warnings.filterwarnings("ignore", category=GreedyTrainingWarning)
    ```
    """


def warn_before_greedy(autoencoder, stacklevel=2):
    """Warns, once per cause, about what makes greedy training of `autoencoder` lose.

    See `greedy_warnings`. Each is a `GreedyTrainingWarning` pointing
    `stacklevel` frames up (the user's call).
    """
    for message in greedy_warnings(autoencoder):
        warnings.warn(message, GreedyTrainingWarning, stacklevel=stacklevel)
