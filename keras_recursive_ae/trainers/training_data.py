"""The data of one `fit`: the user's images, checked, and what each phase reads."""

import keras

from keras_recursive_ae.trainers import phase_relay, seeded_batches
from keras_recursive_ae.utils.images import (
    check_images,
    check_values,
    dataset_batch_size,
    is_dataset,
)


class TrainingData:
    """Checks the images of one `fit` and gives each phase its input.

    Data flows one way: images -> `T_1` -> `T_2` ... Greedy stage `k` reads
    `T_{k-1}`, computed once by the frozen encoder levels into a cache
    (`StageInputCache`), from the previous stage's cache when there is one;
    with `cache="off"` it reads the images and its model runs the frozen
    levels itself. Other phases read the images. A context manager: the
    caches are freed on exit, also when training raises.

    Args:
        autoencoder: the `SymmetricAutoencoder` being trained.
        cache: the trainer's `StageInputCache`.
        x: the training images (array or batched `tf.data.Dataset`).
        validation_data: the validation images, or `None`.
        batch_size: the user's batch size, or `None`.
        greedy: whether the schedule has greedy stages (which cache).

    Raises:
        ValueError: for images of the wrong shape, empty, not finite,
            integers, or outside [0, 1] for a decoder ending in a sigmoid.
    """

    def __init__(self, autoencoder, cache, x, validation_data, batch_size, greedy):
        sigmoid = _ends_in_sigmoid(autoencoder)
        for argument, data in (("x", x), ("validation_data", validation_data)):
            if data is not None:
                check_images(data, argument, autoencoder.shapes[0])
                check_values(data, argument, sigmoid)
        self.autoencoder = autoencoder
        self.cache = cache
        self.x, self.validation_data = x, validation_data
        self.batch_size = batch_size or (dataset_batch_size(x) if is_dataset(x) else 32)
        self.caching = greedy and not cache.recomputes
        self._chains = {"x": (None, None), "validation_data": (None, None)}
        self._reading = {}

    def __enter__(self):
        return self

    def __exit__(self, *error):
        for _, tensor in self._chains.values():
            self.cache.free(tensor)
        self._chains, self._reading = {}, {}

    def for_level(self, level):
        """`(train, validation)`: what a phase training `level` (or `None`: all) reads."""
        if level is None or not self.caching:
            return self.x, self.validation_data
        validation = None
        if self.validation_data is not None:
            validation = self._tensor("validation_data", level - 1)
        return self._tensor("x", level - 1), validation

    def _tensor(self, argument, level):
        """`T_level` of the images passed as `argument`, computed from the cache kept."""
        data = getattr(self, argument)
        kept_level, kept = self._chains[argument]
        if kept_level == level:
            return kept
        if kept_level is not None and kept_level == level - 1:
            tensor = self.cache.next(
                self.autoencoder.encoder_levels[level - 1], kept, self.batch_size
            )
        else:
            tensor = self.cache.images(data, self.batch_size)
            if level > 0:
                images = tensor
                tensor = self.cache.next(
                    self.autoencoder.encoder_prefix(level), images, self.batch_size
                )
                if images is not data:
                    self.cache.free(images)
        if kept is not data:
            self.cache.free(kept)
        self._chains[argument] = (level, tensor)
        return tensor

    def fit_inputs(self, data, options, seed, first_epoch, epochs, validation=False):
        """`(data, steps_per_epoch)` for `keras.Model.fit`: the one route into it."""
        steps = options.validation_steps if validation else options.steps_per_epoch
        if is_dataset(data):
            return data, steps  # batched and ordered by its own pipeline
        batch_size = options.batch_size
        if validation and options.validation_batch_size:
            batch_size = options.validation_batch_size
        data, seeded = seeded_batches.fit_inputs(
            data, batch_size, seed, options.shuffle and not validation, first_epoch, epochs, steps
        )
        self._reading[validation] = seeded  # kept while the phase reads it, then let go
        return data, seeded.steps_per_epoch

    def image_loss(self, loss):
        """A function returning the full model's loss on the validation images, or `None`."""
        if self.validation_data is None:
            return None
        images, model = self.validation_data, self.autoencoder
        return lambda: phase_relay.image_loss(model, images, loss, self.batch_size)


def _ends_in_sigmoid(model):
    activation = getattr(model.layers[-1], "activation", None)
    return activation is not None and keras.activations.serialize(activation) == "sigmoid"
