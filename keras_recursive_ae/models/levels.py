"""Cutting a user's encoder or decoder into levels."""

import warnings

import keras

DROPOUT_LAYERS = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)


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


def warn_about_dropout(autoencoder, stacklevel=2):
    """Warns when levels to be trained greedily contain Dropout (measured to hurt)."""
    found = [
        f"{side} level {level}"
        for side, layers_of in (
            ("encoder", autoencoder.encoder_level_layers),
            ("decoder", autoencoder.decoder_level_layers),
        )
        for level in range(1, autoencoder.depth + 1)
        if any(isinstance(layer, DROPOUT_LAYERS) for layer in layers_of(level))
    ]
    if found:
        warnings.warn(
            f"{', '.join(found)} contain Dropout. Under schedule='greedy' each stage fits "
            "a level's dropped-out output to a clean target, and after assembly the "
            "decoder levels receive inputs unlike those they were trained on: on LFW at "
            "32x32 this made greedy's held-out error 2.4 times larger (docs/schedules.md, "
            "'Why greedy can lose'). Remove Dropout for greedy training, or use "
            "schedule='end_to_end' or fit(..., fine_tune_epochs=N).",
            stacklevel=stacklevel,
        )
