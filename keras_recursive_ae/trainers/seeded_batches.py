"""What a phase's `fit` reads: the batches of an array in a seeded order."""

import math
import weakref

import keras
import numpy as np

from keras_recursive_ae.utils.backend import imported_tensorflow


class SeededBatches(keras.utils.PyDataset):
    """The batches of epochs `first_epoch..epochs-1` of an array, in a seeded order.

    Keras shuffles arrays with its backend's global random state, which a new
    process does not reproduce. Here epoch `e` visits the rows in the order
    `numpy.random.default_rng(seed + [e]).permutation(n)`, so a run resumed
    at epoch `e` sees the same batches as an uninterrupted one, and cached,
    uncached and checkpointed runs see the same batches. Batch `i` is a pure
    function of `i` (all epochs are one sequence, read with
    `steps_per_epoch=steps_per_epoch`), so Keras' prefetching across epoch
    boundaries cannot mix two epochs' orders.

    Args:
        images: an array (a NumPy array, an `np.memmap` cache, ...), or a
            nested tuple of arrays of the same length, read at the same rows:
            each batch then has that structure, e.g. an `(inputs, targets)`
            pair, or `((inputs, targets),)` for a model of two inputs.
        batch_size: rows per batch.
        seed: a list of integers.
        shuffle: whether to shuffle at all.
        first_epoch: the first epoch to serve.
        epochs: one past the last epoch to serve.
        steps_per_epoch: batches per epoch, or `None` for all of them.
    """

    def __init__(
        self, images, batch_size, seed, shuffle, first_epoch, epochs, steps_per_epoch=None
    ):
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self.seed = list(seed)
        self.shuffle = shuffle
        self.first_epoch = first_epoch
        self.epochs = epochs
        self.count = len(keras.tree.flatten(images)[0])
        available = math.ceil(self.count / batch_size)
        if steps_per_epoch is not None and steps_per_epoch > available:
            raise ValueError(
                f"Invalid value for argument `steps_per_epoch`. The {self.count} "
                f"images give {available} batches of {batch_size} per epoch. "
                f"Received: steps_per_epoch={steps_per_epoch}"
            )
        self.steps_per_epoch = steps_per_epoch or available
        self._order = (None, None)

    def __len__(self):
        return (self.epochs - self.first_epoch) * self.steps_per_epoch

    def order(self, epoch):
        if self._order[0] != epoch:
            rows = np.arange(self.count)
            if self.shuffle:
                rows = np.random.default_rng(self.seed + [epoch]).permutation(self.count)
            self._order = (epoch, rows)
        return self._order[1]

    def __getitem__(self, index):
        epoch, batch = divmod(index, self.steps_per_epoch)
        epoch += self.first_epoch
        rows = self.order(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]
        rows = np.sort(rows)  # reads a memory-mapped cache in order
        floatx = keras.config.floatx()
        return keras.tree.map_structure(lambda a: np.asarray(a[rows], dtype=floatx), self.images)


def as_tf_dataset(batches):
    """A `tf.data` pipeline over `batches`, for `fit` on TensorFlow.

    Keras' TensorFlow trainer reads a `keras.utils.PyDataset` through a
    Python generator, and a NumPy array by first copying all of it into a
    tensor; both cost time at every step (docs/performance.md). Here a
    `tf.data` pipeline maps each batch index to `batches[i]` with
    `tf.numpy_function`: no copy of the data, and the next batch is read
    while this one trains.

    TensorFlow keeps the Python function of a `tf.numpy_function` for the
    life of the process, so the pipeline holds `batches` (and the cache it
    reads) only by a weak reference: the caller keeps `batches` while the
    pipeline is read, and the memory is freed once it lets go.

    Args:
        batches: a `keras.utils.PyDataset` whose batch `i` is a pure function
            of `i` (such as `SeededBatches`).

    Returns:
        A `tf.data.Dataset` of the `len(batches)` batches, in order.
    """
    tf = imported_tensorflow()
    first = batches[0]
    signature = [tf.TensorSpec((None,) + a.shape[1:], a.dtype) for a in keras.tree.flatten(first)]
    source = weakref.ref(batches)

    def batch(index):
        read = lambda i: keras.tree.flatten(source()[int(i)])  # noqa: E731
        out = tf.numpy_function(read, [index], [spec.dtype for spec in signature])
        out = [tf.ensure_shape(o, spec.shape) for o, spec in zip(out, signature)]
        return keras.tree.pack_sequence_as(first, out)

    options = tf.data.Options()
    options.autotune.enabled = False  # see `load_lfw`: the autotuner can stall training
    return tf.data.Dataset.range(len(batches)).map(batch).prefetch(2).with_options(options)


def fit_inputs(images, batch_size, seed, shuffle, first_epoch, epochs, steps_per_epoch):
    """What `fit` reads for an array: seeded batches, as `tf.data` on TensorFlow.

    Returns:
        `(data, batches)`: what `keras.Model.fit` reads (it must not shuffle
        or batch it again), and the `SeededBatches` behind it, which the
        caller keeps while `fit` reads (see `as_tf_dataset`).
    """
    batches = SeededBatches(images, batch_size, seed, shuffle, first_epoch, epochs, steps_per_epoch)
    if keras.backend.backend() == "tensorflow":
        return as_tf_dataset(batches), batches
    return batches, batches
