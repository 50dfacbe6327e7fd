"""The input of each greedy stage, `T_{k-1}`, computed once and kept."""

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import psutil

from keras_recursive_ae.trainers import distribution
from keras_recursive_ae.utils.arguments import check_choice, check_int
from keras_recursive_ae.utils.backend import imported_tensorflow
from keras_recursive_ae.utils.images import image_batches, images_of, is_dataset

CACHE_MODES = ("auto", "memory", "disk", "off")
CACHE_DTYPES = ("float32", "float16")
# While a stage trains, its input pipeline may copy a batch-sized part of the
# cache, and the next cache is computed while this one is held: a third of
# the available memory leaves room for both.
DEFAULT_BUDGET_FRACTION = 1 / 3
"""Share of the available memory that the caches may take by default."""
CACHE_BATCH_ROWS = 128
"""Rows per batch when the frozen levels compute a cache (at least)."""


@dataclasses.dataclass(frozen=True)
class CachePlacement:
    """Where one cached stage input was put.

    Attributes:
        shape: shape of the cached tensor, images first, e.g. `(13233, 64, 64, 16)`.
        dtype: storage dtype, `"float32"` or `"float16"`.
        location: `"memory"` or `"disk"`.
        nbytes: bytes it takes.
        path: the file on disk (removed when the cache is freed), or `None`.
        seconds: wall-clock time it took to compute and store.
    """

    shape: tuple
    dtype: str
    location: str
    nbytes: int
    path: object
    seconds: float


class StageInputCache:
    """Computes each greedy stage's input once and keeps it in memory or on disk.

    Stage `k` trains `E_k` and `D_k` to rebuild `T_{k-1}`, the output of the
    frozen encoder levels `E_1..E_{k-1}`. Instead of recomputing them at
    every step, the trainer runs the frozen levels once over the data (in
    inference mode, batch by batch) and the stage trains on the stored
    tensor. Each cache is computed from the previous stage's (`next`), so
    every encoder level runs once over the data in the whole schedule. A
    `tf.data` input is itself stored first (`images`), so a pipeline that
    decodes JPEG files decodes them once.

    An in-memory cache is written over the one it is computed from, so a
    chain of caches holds one buffer, not two at once: each cache is given
    `room` for the largest tensor that will later be computed over it
    (`T_1` of the paper's network is larger than the images).

    A cache is a NumPy array in memory or an `np.memmap` over a temporary
    file, in a folder of its own under `directory`; `free` deletes the file.

    Modes:

    - `"auto"` (default): in memory when it fits the budget, on disk otherwise.
    - `"memory"`: always in memory.
    - `"disk"`: always in a temporary file, read back by the operating
      system's page cache (`np.memmap`), so it never has to fit in memory.
    - `"off"`: nothing is stored; each stage model runs the frozen levels
      itself at every step (slower, no extra memory or disk).

    The budget, in `"auto"` mode, is the number of bytes the caches of this
    object may take in memory at once (the cache a new one is computed from
    is counted as free: it is freed right after). By default (`budget=None`)
    a cache stays in memory when
    it takes at most `DEFAULT_BUDGET_FRACTION` (a third) of the memory
    available when it is computed (`psutil.virtual_memory().available`,
    plus the memory of the cache it replaces).

    A random augmentation in a `tf.data` pipeline is drawn once, when the
    images are stored; use `mode="off"` to draw it at every step.

    Args:
        mode: `"auto"` (default), `"memory"`, `"disk"` or `"off"`.
        budget: bytes the caches may hold in memory at once in `"auto"`
            mode, or `None` (default: a third of the available memory).
        dtype: storage dtype, `"float32"` (default) or `"float16"` (half the
            memory and disk; stages read float32 back; values beyond
            float16's range raise an error).
        directory: folder for cache files, or `None` (default: Python's
            `tempfile.gettempdir()`, which follows `TMPDIR`).

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae import MirroredConvStack
    from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

    stack = MirroredConvStack(filters=(8, 16), input_shape=(32, 32, 3))
    images = np.random.rand(64, 32, 32, 3).astype("float32")
    cache = StageInputCache("disk", dtype="float16")
    t_1 = cache.next(stack.encoder_levels[0], images, batch_size=16)
    t_1.shape                   # (64, 16, 16, 8), stored as float16 in a file
    cache.placements[-1].location   # "disk"
    cache.free(t_1)             # the file is gone now
    ```
    """

    def __init__(self, mode="auto", *, budget=None, dtype="float32", directory=None):
        mode = check_choice(mode, "cache", CACHE_MODES)
        budget = check_int(budget, "cache_budget", allow_none=True)
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = None
        if dtype_name not in CACHE_DTYPES:
            raise ValueError(
                f"Invalid value for argument `cache_dtype`. Expected one of "
                f"{CACHE_DTYPES}. Received: cache_dtype={dtype!r}"
            )
        if directory is not None and not os.path.isdir(directory):
            raise ValueError(
                "Invalid value for argument `cache_dir`. Expected an existing "
                f"folder or None. Received: cache_dir={directory!r}"
            )
        self.mode = mode
        self.budget = budget
        self.dtype = dtype_name
        self.directory = None if directory is None else os.fspath(directory)
        self.placements = []
        self._in_memory = {}  # id -> (cache, the buffer it lies in), until freed
        self._folders = set()  # the folders of the files it made, not deleted yet

    @property
    def recomputes(self):
        """Whether the stage model must run the frozen levels itself."""
        return self.mode == "off"

    def images(self, data, batch_size, room=0):
        """The images of `data` as an array: a `tf.data` input is stored once.

        `room`: values per image to reserve for a later `next` written over
        this cache (when more than an image's own).
        """
        if not is_dataset(data):
            return data
        return self._compute(None, data, batch_size, replaced=0, room=room)

    def pairs(self, data, room=0):
        """The inputs and targets of a dataset of `(inputs, targets)` pairs, read once.

        `room` is as in `images`.

        Returns:
            `(inputs, targets)` as arrays; `targets` is `None` when every
            target equals its input (such as `load_lfw`'s `(image, image)`
            pairs): one cache, not two.
        """
        started = time.perf_counter()
        with contextlib.ExitStack() as writers:  # each frees its cache if reading fails
            inputs = writers.enter_context(_Writer(self, data, replaced=0, room=room))
            targets = None
            for batch_inputs, batch_targets in data:
                batch_inputs, batch_targets = np.asarray(batch_inputs), np.asarray(batch_targets)
                if targets is None and not np.array_equal(batch_inputs, batch_targets):
                    # The first target that differs: the ones before equal their inputs.
                    capacity = None if inputs.cache is None else len(inputs.cache)
                    targets = writers.enter_context(_Writer(self, data, 0, room, capacity))
                    if inputs.count:
                        targets.append(inputs.stored())
                inputs.append(self._to_storage(batch_inputs))
                if targets is not None:
                    targets.append(self._to_storage(batch_targets))
        placed = [inputs] + ([targets] if targets is not None else [])
        for writer in placed:
            self._place(writer.cache, started)
        return inputs.cache, None if targets is None else targets.cache

    def next(self, level_encoder, source, batch_size, room=0):
        """`T_k`, computed by running `level_encoder` over `T_{k-1}` (`source`).

        `source` must be freed right after by the caller, and not read
        again: when it is one of this object's in-memory caches with room
        for `T_k`, `T_k` is written over it. Otherwise its memory is counted
        as available to the new cache. `room` is as in `images`.
        """
        held = self._in_memory.get(id(source))
        if held is not None:
            rows = len(source)
            shape = (rows,) + tuple(
                level_encoder.compute_output_shape((rows,) + source.shape[1:])[1:]
            )
            if math.prod(shape) <= held[1].size:
                return self._compute_over(level_encoder, source, held[1], shape, batch_size)
        replaced = 0 if held is None else held[1].nbytes
        return self._compute(level_encoder, source, batch_size, replaced, room)

    def free(self, cache):
        """Lets go of `cache` (deleting its file), if it is one of this object's caches."""
        self._in_memory.pop(id(cache), None)
        folder = os.path.dirname(getattr(cache, "filename", None) or "")
        if folder in self._folders:  # never a user's own memory-mapped file
            self._folders.discard(folder)
            # Views of the cache keep its pages readable until they are gone.
            shutil.rmtree(folder, ignore_errors=True)

    def _compute(self, model, source, batch_size, replaced, room):
        started = time.perf_counter()
        rows = _rows(batch_size)
        with _Writer(self, source, replaced, room) as writer:
            for batch in image_batches(source, rows):
                if model is not None:
                    batch = _predict(model, batch, rows)
                writer.append(self._to_storage(batch))
        return self._place(writer.cache, started)

    def _compute_over(self, model, source, buffer, shape, batch_size):
        """`model` over `source`, written into `buffer`, which holds `source` itself."""
        started = time.perf_counter()
        rows = _rows(batch_size)
        cache = buffer[: math.prod(shape)].reshape(shape)
        starts = range(0, len(source), rows)
        if math.prod(shape[1:]) > math.prod(source.shape[1:]):
            # Larger rows reach into rows not read yet when written in
            # order: from the last batch back, they reach only rows read.
            starts = reversed(starts)
        for start in starts:
            batch = np.array(source[start : start + rows])  # read before it is written over
            cache[start : start + rows] = self._to_storage(_predict(model, batch, rows))
        self.free(source)
        return self._place(cache, started)

    def _place(self, cache, started):
        if not isinstance(cache, np.memmap):
            # Held by the cache until `free`: an id stays this array's while it is.
            self._in_memory[id(cache)] = (cache, cache if cache.base is None else cache.base)
        self.placements.append(
            CachePlacement(
                cache.shape,
                self.dtype,
                "disk" if isinstance(cache, np.memmap) else "memory",
                cache.nbytes,
                getattr(cache, "filename", None),
                time.perf_counter() - started,
            )
        )
        return cache

    def _allocate(self, shape, replaced, room=0):
        nbytes = math.prod(shape) * np.dtype(self.dtype).itemsize
        values = shape[0] * max(math.prod(shape[1:]), room)
        if self._fits_in_memory(values * np.dtype(self.dtype).itemsize, replaced):
            return np.empty(values, dtype=self.dtype)[: math.prod(shape)].reshape(shape)
        directory = self.directory or tempfile.gettempdir()
        free = shutil.disk_usage(directory).free
        if nbytes > free:
            raise OSError(
                f"The stage input cache needs {nbytes / 2**30:.2f} GiB on disk but "
                f"the cache folder has {free / 2**30:.2f} GiB free. Received: "
                f"cache_dir={self.directory!r}. Pass another cache_dir, "
                "cache_dtype='float16', a larger cache_budget, or cache='off'."
            )
        folder = tempfile.mkdtemp(prefix="keras_recursive_ae_cache_", dir=directory)
        self._folders.add(folder)
        path = os.path.join(folder, "stage_input.bin")
        try:
            # Reserved up front: writing a full disk through a memory map
            # would kill the process (SIGBUS) instead of raising an OSError.
            with open(path, "wb") as f:
                _reserve(f.fileno(), nbytes)
            return np.memmap(path, dtype=self.dtype, mode="r+", shape=shape)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _fits_in_memory(self, nbytes, replaced):
        if self.mode != "auto":
            return self.mode == "memory"
        if self.budget is not None:
            held = sum(buffer.nbytes for _, buffer in self._in_memory.values()) - replaced
            return held + nbytes <= self.budget
        available = psutil.virtual_memory().available + replaced
        return nbytes <= DEFAULT_BUDGET_FRACTION * available

    def _to_storage(self, out):
        with np.errstate(over="ignore"):
            stored = np.asarray(out, dtype=self.dtype)
        if self.dtype == "float16" and not np.all(np.isfinite(stored)):
            if np.all(np.isfinite(out)):
                raise ValueError(
                    "A stage input exceeds the range of float16 (about "
                    f"+/-65504; largest magnitude here {np.max(np.abs(out)):.4g}). "
                    "Use cache_dtype='float32'."
                )
        return stored


class _Writer:
    """Fills one cache batch by batch; on error the cache is freed, disk errors explained.

    The cache is allocated at the first batch, sized by the source's
    length (or cardinality); `cache` is the filled part once the writer exits.
    """

    def __init__(self, owner, source, replaced, room=0, capacity=None):
        self.owner, self.source, self.replaced = owner, source, replaced
        self.room, self.capacity = room, capacity
        self.cache, self.count = None, 0  # `count`: rows stored so far

    def __enter__(self):
        return self

    def append(self, stored):
        if self.cache is None:
            capacity = self.capacity or _capacity(self.source, len(stored))
            shape = (capacity,) + stored.shape[1:]
            self.cache = self.owner._allocate(shape, self.replaced, self.room)
        if self.count + len(stored) > len(self.cache):
            raise ValueError(
                f"The data yielded more than the {len(self.cache)} images its "
                "cardinality announced."
            )
        self.cache[self.count : self.count + len(stored)] = stored
        self.count += len(stored)

    def stored(self):
        return self.cache[: self.count]

    def __exit__(self, error_type, error, traceback):
        owner = self.owner
        if error is None:
            if self.cache is None:
                error = ValueError("The data passed to the stage holds no images.")
            else:
                try:
                    if isinstance(self.cache, np.memmap):
                        self.cache.flush()
                    self.cache = self.cache[: self.count]
                    return False
                except OSError as flush_error:
                    error = flush_error
        owner.free(self.cache)
        if isinstance(error, OSError):
            raise OSError(
                error.errno,
                f"Could not write the stage input cache in "
                f"{owner.directory or tempfile.gettempdir()}: {error}. "
                f"Received: cache_dir={owner.directory!r}. Pass another cache_dir, "
                "cache_dtype='float16' or cache='off'.",
            ) from error
        if error_type is None:
            raise error
        return False


def _reserve(fileno, nbytes):
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fileno, 0, max(nbytes, 1))
    else:
        os.ftruncate(fileno, nbytes)


def _rows(batch_size):
    return max(int(batch_size or 32), CACHE_BATCH_ROWS)  # inference: larger is faster


def _predict(model, batch, rows):
    # `predict_on_batch` runs one compiled step per batch; `predict` sets up a
    # dataset, an iterator and callbacks at every call. Under a tf.distribute
    # strategy, though, `predict_on_batch` returns every replica's copy.
    batch = batch.astype(keras.config.floatx(), copy=False)
    if distribution.capture() is not None:
        return keras.ops.convert_to_numpy(model.predict(batch, batch_size=rows, verbose=0))
    return keras.ops.convert_to_numpy(model.predict_on_batch(batch))


def _capacity(data, first_batch_rows):
    """Rows the cache needs at most (a dataset's last batch may be short)."""
    if not is_dataset(data):
        return len(data)
    cardinality = int(data.cardinality())
    if cardinality >= 0:
        return cardinality * first_batch_rows
    # Unknown (e.g. after `filter`): count the images, reading the data once more.
    tf = imported_tensorflow()
    return int(data.reduce(np.int64(0), lambda n, b: n + tf.shape(images_of(b), tf.int64)[0]))
