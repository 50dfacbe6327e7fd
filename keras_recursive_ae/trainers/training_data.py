"""The data of one `fit`: the user's inputs and targets, checked, and what each phase reads."""

import math

import keras
import numpy as np

from keras_recursive_ae.trainers import seeded_batches
from keras_recursive_ae.utils.images import (
    check_images,
    check_values,
    dataset_batch_size,
    image_batches,
    is_dataset,
)


class TrainingData:
    """Checks the data of one `fit` and gives each phase its input.

    Data flows one way: images -> `T_1` -> `T_2` ... Greedy stage `k` reads
    `T_{k-1}` of the inputs, computed once by the frozen encoder levels into
    a cache (`StageInputCache`), from the previous stage's cache when there
    is one, and as its target `T_{k-1}` of the targets: a second chain of
    caches when the targets are not the inputs (`fit(x, y)`, a dataset of
    `(inputs, targets)` pairs that differ), none otherwise. With
    `cache="off"` it reads the images and its model runs the frozen levels
    itself. Other phases read the images. A context manager: the caches are
    freed on exit, also when training raises.

    Args:
        autoencoder: the `SymmetricAutoencoder` being trained.
        cache: the trainer's `StageInputCache`.
        x: the inputs: an array, or a batched `tf.data.Dataset` of inputs
            or of `(inputs, targets)` pairs.
        y: the targets of an array `x` (same shape), or `None`.
        validation_data: `None`, an array or dataset as `x`, or an
            `(inputs, targets)` tuple.
        batch_size: the user's batch size, or `None`.
        greedy: whether the schedule has greedy stages (which cache).
        shuffle, steps_per_epoch, validation_steps, validation_batch_size:
            as in `keras.Model.fit`.

    Raises:
        ValueError: for images of the wrong shape, empty, not finite,
            integers, targets of another shape than the inputs, or targets
            outside [0, 1] for a decoder ending in a sigmoid.
    """

    def __init__(
        self,
        autoencoder,
        cache,
        x,
        y,
        validation_data,
        *,
        batch_size,
        greedy,
        shuffle=True,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
    ):
        sigmoid = _ends_in_sigmoid(autoencoder)
        shape = autoencoder.shapes[0]
        validation = _pair(validation_data, "validation_data")
        validation_names = ("validation_data", None)
        if isinstance(validation_data, (tuple, list)):
            validation_names = ("validation_data[0]", "validation_data[1]")
        self.sources = {}
        for split, (inputs, targets), names in (
            ("train", (x, y), ("x", "y")),
            ("validation", validation, validation_names),
        ):
            if inputs is None:
                continue
            if targets is not None and is_dataset(inputs):
                raise ValueError(
                    f"`{names[1]}` must be None when `{names[0]}` is a dataset: give the "
                    f"dataset (inputs, targets) pairs. Received: {names[1]} of type "
                    f"{type(targets).__name__}"
                )
            check_images(inputs, names[0], shape)
            if _pairs(inputs):
                _check_pair_spec(inputs, names[0])
            if targets is not None:
                check_images(targets, names[1], shape)
                if len(targets) != len(inputs):
                    raise ValueError(
                        f"`{names[0]}` and `{names[1]}` must hold as many images. "
                        f"Received: {len(inputs)} inputs and {len(targets)} targets"
                    )
                check_values(targets, names[1], sigmoid)
            # Inputs outside [0, 1] are fine when the targets are not the inputs.
            check_values(inputs, names[0], sigmoid and targets is None and not _pairs(inputs))
            if targets is inputs:
                targets = None  # one chain, not two
            self.sources[split] = (inputs, targets)
        self.autoencoder = autoencoder
        self.cache = cache
        self.caching = greedy and not cache.recomputes
        self.batch_size = batch_size or (dataset_batch_size(x) if is_dataset(x) else 32)
        self.shuffle = shuffle
        self.steps = {"train": steps_per_epoch, "validation": validation_steps}
        self.validation_batch_size = validation_batch_size
        self._chains = {}  # split -> (level, (inputs, targets)) of the chain kept
        self._reading = {}

    def __enter__(self):
        return self

    def __exit__(self, *error):
        for split, (_, arrays) in self._chains.items():
            self._free(arrays, self.sources[split])
        self._chains, self._reading = {}, {}

    @property
    def has_validation(self):
        return "validation" in self.sources

    @property
    def has_targets(self):
        """Whether the training or validation data has targets (perhaps equal to the inputs)."""
        return any(t is not None or _pairs(i) for i, t in self.sources.values())

    @property
    def recomputes(self):
        """Whether a greedy stage's model runs the frozen levels itself (no cache)."""
        return not self.caching

    def first_batch(self):
        """The first batch of the targets (the inputs when there are none), as an array."""
        inputs, targets = self.sources["train"]
        data = inputs if targets is None else targets
        if is_dataset(data):
            for batch in data.take(1):
                return np.asarray(batch[-1] if isinstance(batch, (tuple, list)) else batch)
            return None
        return np.asarray(data[: self.batch_size])

    def fit_inputs(self, phase, first_epoch, targets_as_inputs=False):
        """`(train, steps, validation, validation_steps)` of `phase`, for `keras.Model.fit`.

        Args:
            phase: the `Phase`.
            first_epoch: the phase's epoch it starts (or resumes) at.
            targets_as_inputs: whether the phase's model takes
                `[inputs, targets]` (the targets then are inputs of `fit`,
                with no `y`).
        """
        train, steps = self._fit_input("train", phase, first_epoch, phase.epochs, targets_as_inputs)
        validation = validation_steps = None
        if self.has_validation:
            validation, validation_steps = self._fit_input(
                "validation", phase, 0, 1, targets_as_inputs
            )
        return train, steps, validation, validation_steps

    def _fit_input(self, split, phase, first_epoch, epochs, targets_as_inputs):
        level = phase.level if self.caching else None
        inputs, targets = self._tensors(split, level)
        steps = self.steps[split]
        if is_dataset(inputs):
            # Batched and ordered by its own pipeline.
            if targets_as_inputs:
                if not _pairs(inputs):  # the inputs are their own targets
                    return inputs.map(lambda batch: ((batch, batch),)), steps
                return inputs.map(lambda batch, target: ((batch, target),)), steps
            return inputs, steps
        validation = split == "validation"
        batch_size = self.batch_size
        if validation and self.validation_batch_size:
            batch_size = self.validation_batch_size
        if targets_as_inputs:
            arrays = ((inputs, inputs if targets is None else targets),)
        else:
            arrays = inputs if targets is None else (inputs, targets)
        data, seeded = seeded_batches.fit_inputs(
            arrays,
            batch_size,
            phase.seed,
            self.shuffle and not validation,
            first_epoch,
            epochs,
            steps,
        )
        self._reading[split] = seeded  # kept while the phase reads it, then let go
        return data, seeded.steps_per_epoch

    def _tensors(self, split, level):
        """`(T_level(inputs), T_level(targets) or None)`, computed from the chain kept.

        `level` is `None` for the data as the user gave it.
        """
        inputs, targets = self.sources[split]
        if level is None:
            return inputs, targets
        level -= 1  # stage k reads T_{k-1}
        kept_level, kept = self._chains.get(split, (None, None))
        if kept_level == level:
            return kept
        if kept_level is not None and kept_level == level - 1:
            encoder = self.autoencoder.encoder_levels[level - 1]
            tensors = tuple(self._next(encoder, array, level) for array in kept)
        else:
            stored = self._stored(inputs, targets)
            tensors = stored
            if level > 0:
                prefix = self.autoencoder.encoder_prefix(level)
                tensors = tuple(self._next(prefix, array, level) for array in stored)
                self._free(stored, (inputs, targets))
        if kept is not None:
            self._free(kept, (inputs, targets))
        self._chains[split] = (level, tensors)
        return tensors

    def _stored(self, inputs, targets):
        if is_dataset(inputs) and _pairs(inputs):
            return self.cache.pairs(inputs, self._room(0))
        return self.cache.images(inputs, self.batch_size, self._room(0)), targets

    def _next(self, encoder, array, level):
        if array is None:
            return None
        return self.cache.next(encoder, array, self.batch_size, self._room(level))

    def _room(self, level):
        """Values per image of the largest tensor a chain from `T_level` holds (to `T_{n-1}`)."""
        shapes = self.autoencoder.shapes[level : self.autoencoder.depth]
        if any(None in shape for shape in shapes):
            return 0  # not known before the data: each cache is its own size
        return max(math.prod(shape) for shape in shapes)

    def _free(self, arrays, users):
        for array in arrays:
            if array is not None and not any(array is user for user in users):
                self.cache.free(array)

    def image_loss(self, loss):
        """A function returning the full model's loss on the validation data, or `None`.

        The loss between the autoencoder's reconstructions of the validation
        inputs and the validation targets (the inputs when there are none),
        averaged over the images: comparable across phases.
        """
        if not self.has_validation:
            return None
        inputs, targets = self.sources["validation"]
        model, batch_size = self.autoencoder, self.batch_size
        return lambda: _image_loss(model, inputs, targets, loss, batch_size)


def _image_loss(model, inputs, targets, loss, batch_size):
    loss = keras.losses.get(loss)
    total, count = 0.0, 0
    for batch, target in _batch_pairs(inputs, targets, batch_size):
        rebuilt = model.predict_on_batch(batch)
        # In float32 whatever the policy: a 16-bit loss would round the scores.
        rebuilt = keras.ops.cast(rebuilt, "float32")
        values = keras.ops.convert_to_numpy(loss(keras.ops.cast(target, "float32"), rebuilt))
        # A loss function gives one value per image (or pixel); a `Loss`
        # object, the batch's mean.
        if np.ndim(values) == 0:
            batch_total = float(values) * len(batch)
        else:
            batch_total = float(np.sum(np.reshape(values, (len(batch), -1)).mean(axis=1)))
        total, count = total + batch_total, count + len(batch)
    return total / count


def _batch_pairs(inputs, targets, batch_size):
    """`(inputs, targets)` batches of arrays or a dataset (of images or of pairs)."""
    floatx = keras.config.floatx()
    if is_dataset(inputs) and _pairs(inputs):
        for batch_inputs, batch_targets in inputs:
            yield np.asarray(batch_inputs, floatx), np.asarray(batch_targets, floatx)
        return
    batches = image_batches(inputs, batch_size, dtype=floatx)
    if targets is None:
        for batch in batches:
            yield batch, batch
        return
    yield from zip(batches, image_batches(targets, batch_size, dtype=floatx))


def _pair(data, argument):
    """`(inputs, targets)` of `validation_data` (targets `None` when not given)."""
    if not isinstance(data, (tuple, list)):
        return data, None
    if len(data) not in (1, 2):
        raise ValueError(
            f"Expected `{argument}` to be images, or an `(inputs, targets)` tuple. "
            f"Received: a tuple of {len(data)} elements (sample weights are not supported)"
        )
    return data[0], data[1] if len(data) == 2 else None


def _check_pair_spec(dataset, argument):
    spec = dataset.element_spec
    if len(spec) != 2 or tuple(spec[1].shape) != tuple(spec[0].shape):
        raise ValueError(
            f"Expected `{argument}` to yield images, or `(inputs, targets)` pairs of images "
            f"of the same shape: the autoencoder learns to map each input to its target. "
            f"Received a dataset of {len(spec)}-tuples of shapes "
            f"{[tuple(getattr(s, 'shape', ())) for s in spec]}. To train on the inputs "
            f"alone, map it first: `{argument}.map(lambda inputs, *_: inputs)`."
        )
    if not spec[1].dtype.is_floating:
        raise ValueError(
            f"Expected the targets of `{argument}` to be float images, e.g. in [0, 1]. "
            f"Received: targets of dtype {spec[1].dtype.name}. Convert them first, "
            "e.g. `targets / 255` for 8-bit images."
        )


def _pairs(dataset):
    """Whether a dataset yields `(inputs, targets)` pairs."""
    return is_dataset(dataset) and isinstance(dataset.element_spec, (tuple, list))


def _ends_in_sigmoid(model):
    activation = getattr(model.layers[-1], "activation", None)
    return activation is not None and keras.activations.serialize(activation) == "sigmoid"
