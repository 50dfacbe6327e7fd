"""Checking the user's images, and the inputs each stage trains on."""

import collections
import contextlib
import gc
import math
import mmap
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
import zlib

import keras
import numpy as np

from keras_recursive_ae import distribution

CACHE_MODES = ("auto", "memory", "disk", "off")
CACHE_DTYPES = ("float32", "float16")
# A cache in memory is copied once more by the backend's input pipeline
# while its stage trains: a third leaves room for both.
DEFAULT_BUDGET_FRACTION = 1 / 3
"""Share of the available memory that one stage's cache may take by default."""
CACHE_BATCH_ROWS = 128
"""Rows per batch when the frozen levels compute a cache (at least)."""
FALLBACK_BUDGET = 2 * 1024**3
"""Default budget, in bytes, where the available memory cannot be read."""


def is_dataset(data):
    # Only a user who already imported TensorFlow can pass a `tf.data.Dataset`.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def image_batch_shape(data, argument):
    """The shape of `data` as a batch of images, checked to be non-empty."""
    if is_dataset(data):
        tf = sys.modules["tensorflow"]
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]  # (images, targets) pairs: the targets are not used
        if not isinstance(spec, tf.TensorSpec):
            raise TypeError(
                f"Expected `{argument}` to yield batches of images (or "
                f"(images, anything) pairs). Received a dataset of {spec}"
            )
        cardinality = int(data.cardinality())
        if cardinality == 0 or (
            cardinality == tf.data.UNKNOWN_CARDINALITY and not any(True for _ in data.take(1))
        ):
            raise ValueError(f"The dataset passed as `{argument}` is empty.")
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                f"The dataset passed as `{argument}` repeats forever; recursive "
                "training runs one `fit` per level over a finite dataset. "
                "Remove `.repeat()`."
            )
        return tuple(spec.shape)
    shape = getattr(data, "shape", None)
    if shape is None:
        raise TypeError(
            f"Expected `{argument}` to be an array of images (N, height, width, "
            "channels) or a batched `tf.data.Dataset` of them. "
            f"Received: {argument} of type {type(data).__name__}"
        )
    shape = tuple(shape)
    if len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"`{argument}` is empty. Received: {argument} with shape {shape}")
    return shape


def check_images(data, argument, image_shape):
    """Raises if `data` is not a batch of images of `image_shape`."""
    shape = image_batch_shape(data, argument)
    expected = (None,) + tuple(image_shape)
    batched = is_dataset(data)
    if len(shape) != len(expected) or tuple(shape[1:]) != tuple(image_shape):
        what = "batches of" if batched else "an array of"
        hint = ""
        if batched and tuple(shape) == tuple(image_shape):
            hint = " The dataset yields single images: call `.batch(batch_size)` on it."
        raise ValueError(
            f"Expected `{argument}` to be {what} images of shape "
            f"{tuple(image_shape)} (with a leading batch axis). Received: "
            f"{argument} with {'element ' if batched else ''}shape {shape}.{hint}"
        )


def check_finite(data, argument, chunk=1024):
    """Raises if an array of images holds NaN or infinite values.

    Arrays are read in chunks, so the check needs no second copy of the
    data. Datasets are not read ahead: a non-finite loss stops training.
    """
    if is_dataset(data):
        return
    bad = []
    for start in range(0, len(data), chunk):
        images = np.asarray(data[start : start + chunk])
        if not np.issubdtype(images.dtype, np.floating):
            return  # integer images cannot hold NaN
        finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
        bad.extend(int(i) + start for i in np.flatnonzero(~finite))
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"`{argument}` holds {len(bad)} images with NaN or infinite values "
            f"(at indices {shown}). Remove or repair them before training."
        )


def dataset_batch_size(data):
    for batch in data.take(1):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(images.shape[0])


CachePlacement = collections.namedtuple(
    "CachePlacement", ["shape", "dtype", "location", "nbytes", "path", "seconds"]
)
CachePlacement.__doc__ = """Where one cached stage input was put.

Attributes:
    shape: shape of the cached tensor, images first, e.g. `(13233, 64, 64, 16)`.
    dtype: storage dtype, `"float32"` or `"float16"`.
    location: `"memory"` or `"disk"`.
    nbytes: bytes it takes.
    path: the file on disk (removed when the cache is freed), or `None`.
    seconds: wall-clock time it took to compute and store.
"""


class StageInputCache:
    """What each stage reads: the images, or `T_{k-1}` computed once.

    Stage `k` trains `E_k` and `D_k` to rebuild `T_{k-1}`, the output of the
    frozen encoder levels `E_1..E_{k-1}`. Instead of recomputing
    `E_1..E_{k-1}` at every step, the cache runs the frozen levels once over
    the data (in inference mode, batch by batch, writing each batch straight
    into a preallocated array or file) and the stage trains on the stored
    tensor. Inside `run()` the cache of one stage is kept until the next
    stage's cache is computed from it, so stage `k + 1` runs only `E_k` over
    the stored `T_{k-1}`: each encoder level runs once over the data in the
    whole schedule. In memory, the new cache is written over the one it is
    computed from, row by row in an order that never overwrites a row not
    yet read, so a run holds one cache's memory per data object, not two.
    When the data is a `tf.data.Dataset`, the images
    themselves (`T_0`) are cached too, so a pipeline that decodes JPEG files
    decodes them once, not at every epoch and stage.

    Modes:

    - `"auto"` (default): in memory when the tensor fits the budget, in a
      temporary file otherwise.
    - `"memory"`: always in memory (a NumPy array).
    - `"disk"`: always in a temporary file under `directory`, read back batch
      by batch (`os.preadv`), so it never has to fit in memory; the
      operating system's page cache keeps it in spare memory when there is
      some.
    - `"off"`: nothing is stored; the stage model runs the frozen levels
      itself at every step (slower, no extra memory or disk).

    The budget, in `"auto"` mode, is the number of bytes that the caches
    held by this object may take in memory at once. By default
    (`budget=None`) a cache stays in memory when it takes at most
    `DEFAULT_BUDGET_FRACTION` (a third) of the memory available when it is
    computed: `MemAvailable` of `/proc/meminfo`, bounded by the cgroup
    (container) limit when there is one, or `os.sysconf` where there is no
    `/proc`; 2 GiB (`FALLBACK_BUDGET`) where none can be read. The memory
    the cache already holds is counted as available to it.

    Cached batches are served by `StageBatches` (a `keras.utils.PyDataset`,
    so every backend reads them the same way; the trainer reads them in its
    seeded order, on TensorFlow through `as_tf_dataset`). Temporary files live in a
    folder of their own under `directory`, removed as soon as the cache is
    freed, also when training raises.

    A random augmentation in a `tf.data` pipeline is drawn once, when the
    images are cached; use `mode="off"` to draw it at every step.

    Args:
        mode: `"auto"` (default), `"memory"`, `"disk"` or `"off"`.
        budget: bytes the caches may hold in memory at once in `"auto"`
            mode, or `None` (default: a third of the available memory).
        dtype: storage dtype, `"float32"` (default) or `"float16"` (half
            the memory and disk; the stage reads float32 back; values
            beyond float16's range raise an error).
        directory: folder for cache files, or `None` (default: Python's
            `tempfile.gettempdir()`, which follows `TMPDIR`).

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae import MirroredConvStack
    from keras_recursive_ae.stage_inputs import StageInputCache

    stack = MirroredConvStack(filters=(8, 16), input_shape=(32, 32, 3))
    images = np.random.rand(64, 32, 32, 3).astype("float32")
    cache = StageInputCache("disk", dtype="float16")
    with cache.inputs(stack.encoder_prefix(1), images, batch_size=16) as batches:
        batches.location        # "disk"
        batches[0].shape        # (16, 16, 16, 8), float32
    cache.placements[-1].shape  # (64, 16, 16, 8); the file is gone now
    ```
    """

    def __init__(self, mode="auto", *, budget=None, dtype="float32", directory=None):
        if mode not in CACHE_MODES:
            raise ValueError(
                f"Invalid value for argument `cache`. Expected one of "
                f"{CACHE_MODES}. Received: cache={mode!r}"
            )
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0
        ):
            raise ValueError(
                "Invalid value for argument `cache_budget`. Expected None or a "
                f"non-negative number of bytes. Received: cache_budget={budget!r}"
            )
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
        self.budget = None if budget is None else int(budget)
        self.dtype = dtype_name
        self.directory = None if directory is None else os.fspath(directory)
        self.placements = []
        self._runs = 0
        self._entries = {}  # id(data) -> _Entry, in use or kept for the next stage
        self._largest_row = None  # of the running `run()`, if it said

    @property
    def recomputes(self):
        """Whether the stage model must run the frozen prefix itself."""
        return self.mode == "off"

    @contextlib.contextmanager
    def run(self, largest_row=None):
        """The scope of one training run, over all its stages.

        Inside it, the cache of stage `k` outlives the stage, so the next
        stage computes its input from it by running one encoder level
        (instead of all earlier levels over the images), written over it
        in memory. Everything is freed when the run ends, also when it
        raises. Runs may nest; the outermost one frees.

        Args:
            largest_row: the shape of one row of the largest stage input the
                run caches (say, `T_1`), or `None`. Each new in-memory cache
                then takes room for that many values per row, when the
                budget allows, so that a larger cache computed from it can
                be written over it too (the images `T_0` are smaller than
                `T_1` in the paper's architecture). Fresh memory is slow to
                touch, on virtual machines most of all.
        """
        outer_row = self._largest_row
        if largest_row is not None:
            self._largest_row = tuple(largest_row)
        self._runs += 1
        try:
            yield self
        finally:
            self._runs -= 1
            self._largest_row = outer_row
            if self._runs == 0:
                for key, entry in list(self._entries.items()):
                    if entry.users == 0:
                        del self._entries[key]
                        entry.store.free()

    @contextlib.contextmanager
    def inputs(self, prefix, data, batch_size, *, cache_images=True):
        """Yields the data stage `k` trains on; frees it afterwards.

        Args:
            prefix: the frozen model `images -> T_{k-1}`, or `None` at the
                first stage (where `T_0` is the images).
            data: the user's images (array or dataset).
            batch_size: batch size of the stage; `None` means 32, as in
                Keras. The cache is computed in batches of at least
                `CACHE_BATCH_ROWS` (inference only: larger is faster).
            cache_images: whether a `tf.data` input is cached at the first
                stage (`prefix=None`), so that it is decoded once for all
                the stages that read it. A schedule with one phase reading
                the images gains nothing from it.

        Yields:
            `data` itself when nothing is cached (`"off"`, or images at the
            first stage that are NumPy arrays or not to be cached), otherwise
            a `StageBatches` over the cache.
        """
        if self.mode == "off" or (prefix is None and not (cache_images and is_dataset(data))):
            yield data
            return
        batch_size = int(batch_size or 32)
        target = None if prefix is None else prefix.outputs[0]
        variables = [] if prefix is None else list(prefix.weights)
        key = id(data)
        entry = self._entries.get(key)
        if entry is not None and entry.target is target and entry.is_current():
            entry.users += 1  # the same tensor again, e.g. `validation_data=x`
        else:
            source = None
            if entry is not None and entry.users == 0:
                # Kept from the previous stage: start from it if it is current.
                if entry.is_current():
                    source = entry
                else:
                    del self._entries[key]
                    entry.store.free()
            try:
                # The source stays counted in the memory held while it is read.
                store = self._compute(prefix, data, batch_size, source)
            finally:
                if source is not None:
                    del self._entries[key]
                    source.store.free()  # its memory may hold the new cache now
            entry = _Entry(data, target, variables, store)
            if key not in self._entries:
                self._entries[key] = entry
            else:
                entry.untracked = True
        failed = True
        try:
            yield StageBatches(entry.store, batch_size)
            failed = False
        finally:
            entry.users -= 1
            if entry.users == 0 and (failed or entry.untracked or self._runs == 0):
                if self._entries.get(key) is entry:
                    del self._entries[key]
                entry.store.free()

    def _compute(self, prefix, data, batch_size, source):
        """Runs the frozen levels once over the data into a new store."""
        started = time.perf_counter()
        model = None if source is None else _step_model(source.target, prefix)
        # Inference only: larger batches than training's run faster.
        rows = max(batch_size, CACHE_BATCH_ROWS)
        store = None
        if model is not None:
            capacity = source.store.size
            store = self._store_over(source.store, tuple(model.outputs[0].shape[1:]))
            # Rows larger than the source's are written last row first, so
            # that no write reaches a source row not read yet.
            backwards = store is not None and store.row_bytes > source.store.row_bytes
            batches = _store_batches(source.store, rows, backwards)
        else:
            model = prefix
            batches = _data_batches(data, rows)
            capacity = None if is_dataset(data) else len(data)
        # `predict_on_batch` runs one compiled step per batch; `predict` sets
        # up a dataset, an iterator and callbacks at every call, several
        # seconds per stage. Under a tf.distribute strategy, though,
        # `predict_on_batch` returns every replica's copy.
        distributed = distribution.capture() is not None
        try:
            for first_row, batch in batches:
                if model is None:
                    out = batch
                elif distributed:
                    out = model.predict(batch, batch_size=rows, verbose=0)
                else:
                    out = model.predict_on_batch(batch)
                out = keras.ops.convert_to_numpy(out)
                if store is None:
                    if capacity is None and is_dataset(data):
                        capacity = _dataset_capacity(data, len(out))
                    store = self._new_store(capacity, out.shape[1:])
                store.write(first_row, self._to_storage(out))
            if store is None:
                raise ValueError("The data passed to the stage holds no images.")
            store = self._finish(store)
        except BaseException:
            if store is not None:
                store.free()
            raise
        self.placements.append(
            CachePlacement(
                (store.size,) + store.row_shape, self.dtype, store.location,
                store.nbytes, store.path, time.perf_counter() - started,
            )
        )
        return store

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

    def _held_in_memory(self):
        return sum(
            e.store.buffer.nbytes for e in self._entries.values() if e.store.location == "memory"
        )

    def _fits_in_memory(self, nbytes):
        if self.mode != "auto":
            return self.mode == "memory"
        if self.budget is None:
            available = available_memory()
            if available is not None:
                return nbytes <= DEFAULT_BUDGET_FRACTION * (available + self._held_in_memory())
        budget = FALLBACK_BUDGET if self.budget is None else self.budget
        return self._held_in_memory() + nbytes <= budget

    def _nbytes(self, rows, row_shape):
        return rows * math.prod(row_shape) * np.dtype(self.dtype).itemsize

    def _store_over(self, source, row_shape):
        """A store for the next cache in `source`'s memory, or `None`.

        Only memory that nothing else reads is written over: any view of
        the cache (say, a batch someone kept) keeps it as it is.
        """
        if source.location != "memory" or None in row_shape:
            return None
        if self._nbytes(source.size, row_shape) > source.buffer.nbytes:
            return None
        if not source.is_only_reader():
            return None
        return _MemoryStore(source.size, row_shape, self.dtype, source.buffer)

    def _memory_store(self, capacity, row_shape):
        """A new in-memory store, with room for the run's largest rows if the budget allows."""
        nbytes = self._nbytes(capacity, row_shape)
        if self._largest_row is not None:
            reserved = self._nbytes(capacity, self._largest_row)
            if reserved > nbytes and self._fits_in_memory(reserved):
                return _MemoryStore(capacity, row_shape, self.dtype, reserve=reserved)
        if self._fits_in_memory(nbytes):
            return _MemoryStore(capacity, row_shape, self.dtype)
        return None

    def _new_store(self, capacity, row_shape):
        directory = self.directory or tempfile.gettempdir()
        if capacity is not None:
            store = self._memory_store(capacity, row_shape)
            if store is not None:
                return store
            nbytes = self._nbytes(capacity, row_shape)
            free = shutil.disk_usage(directory).free
            if nbytes > free:
                raise OSError(
                    f"The stage input cache needs {nbytes / 2**30:.2f} "
                    f"GiB on disk but the cache folder has {free / 2**30:.2f} GiB "
                    f"free. Received: cache_dir={self.directory!r}. Pass another "
                    "cache_dir, cache_dtype='float16', a larger cache_budget, or "
                    "cache='off'."
                )
        # A dataset of unknown size goes to disk first (see `_finish`).
        return _DiskStore(directory, row_shape, self.dtype)

    def _finish(self, store):
        store.finish()
        if store.location == "disk" and self.mode != "disk":
            loaded = self._memory_store(store.size, store.row_shape)
            if loaded is not None:
                store.load_into(loaded.array)
                loaded.size = store.size
                store.free()
                return loaded
        return store


def as_tf_dataset(batches):
    """A `tf.data` pipeline over `batches`, for `fit` on TensorFlow.

    Keras' TensorFlow trainer reads a NumPy array through a `tf.data`
    pipeline that first copies the whole array into a tensor, and a
    `keras.utils.PyDataset` through a Python generator; both cost time at
    every step (measured in docs/performance.md). Here a `tf.data` pipeline
    maps each batch index to `batches[i]` with `tf.numpy_function`: no copy
    of the data, and the next batch is read while this one trains.

    Args:
        batches: a `keras.utils.PyDataset` whose batch `i` is a pure function
            of `i` (such as `SeededBatches`), so that reading ahead across
            an epoch boundary changes nothing.

    Returns:
        A `tf.data.Dataset` of the `len(batches)` batches, in order.
    """
    tf = sys.modules["tensorflow"]
    first = batches[0]
    signature = tf.TensorSpec((None,) + first.shape[1:], first.dtype)

    def read(index):
        return batches[int(index)]

    def batch(index):
        out = tf.numpy_function(read, [index], signature.dtype)
        return tf.ensure_shape(out, signature.shape)

    options = tf.data.Options()
    options.autotune.enabled = False  # see `load_lfw`: the autotuner can stall training
    dataset = tf.data.Dataset.range(len(batches)).map(batch).prefetch(2)
    return dataset.with_options(options)


class StageBatches(keras.utils.PyDataset):
    """Batches of a cached stage input, as float32 (`keras.config.floatx()`).

    A `keras.utils.PyDataset`, so Keras' `fit` reads it on every backend
    without copying the whole cache. Batch `i` holds rows
    `i * batch_size` onwards, read from memory or from the cache file, and
    is the same whenever it is read: `fit(shuffle=True)` shuffles the order
    of the batches, as for any `PyDataset`. (The trainer reads the rows in a
    seeded order of its own, through `read`.)

    Args:
        store: the cache to read.
        batch_size: rows per batch.
    """

    def __init__(self, store, batch_size):
        super().__init__()
        self._store = store
        self.batch_size = batch_size

    @property
    def location(self):
        """`"memory"` or `"disk"`."""
        return self._store.location

    @property
    def path(self):
        """The cache file, or `None` when the cache is in memory."""
        return self._store.path

    @property
    def num_samples(self):
        return self._store.size

    def __len__(self):
        return math.ceil(self._store.size / self.batch_size)

    def read(self, rows):
        """The cached rows `rows` (a slice or sorted indices), as floatx."""
        return self._store.read(rows).astype(keras.config.floatx(), copy=False)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} of {len(self)}.")
        start = index * self.batch_size
        return self.read(slice(start, min(start + self.batch_size, self._store.size)))


class _Entry:
    """One cached tensor of one data object, and what it was computed with."""

    def __init__(self, data, target, variables, store):
        self.data = data  # keeps id(data) from being reused while cached
        self.target = target
        self.variables = variables
        self.fingerprint = _fingerprint(variables)
        self.store = store
        self.users = 1
        self.untracked = False

    def is_current(self):
        """Whether the weights it was computed with are unchanged."""
        return _fingerprint(self.variables) == self.fingerprint


def _fingerprint(variables):
    return tuple(
        zlib.crc32(np.ascontiguousarray(keras.ops.convert_to_numpy(v)).view(np.uint8))
        for v in variables
    )


def _step_model(source_target, prefix):
    """The model from a cached tensor to the prefix's output, if there is one."""
    if source_target is None:
        return prefix  # the cache holds the images
    if prefix is None:
        return None  # the images (say, for fine-tuning) are not computed from a level
    if source_target is prefix.outputs[0]:
        return None
    try:
        return keras.Model(source_target, prefix.outputs[0])
    except ValueError:
        return None  # not an earlier tensor of the same graph


class _MemoryStore:
    """Rows in a NumPy array: a view of `buffer`, which may hold more bytes."""

    location = "memory"
    path = None

    def __init__(self, capacity, row_shape, dtype, buffer=None, reserve=0):
        self.row_shape = tuple(row_shape)
        self.row_bytes = math.prod(self.row_shape) * np.dtype(dtype).itemsize
        nbytes = capacity * self.row_bytes
        if buffer is None:
            buffer = _fresh_memory(max(nbytes, reserve))
        self.buffer = buffer
        self.array = buffer[:nbytes].view(dtype).reshape((capacity,) + self.row_shape)
        self.size = 0

    @property
    def nbytes(self):
        return self.size * self.row_bytes

    def write(self, first_row, rows):
        if first_row + len(rows) > len(self.array):
            raise ValueError(
                f"The data yielded more than the {len(self.array)} images its "
                "cardinality announced."
            )
        self.array[first_row : first_row + len(rows)] = rows
        self.size = max(self.size, first_row + len(rows))

    def finish(self):
        self.array = self.array[: self.size]

    def read(self, rows):
        return self.array[rows]

    def free(self):
        self.array = self.buffer = None

    def is_only_reader(self):
        """Whether no view of the rows exists outside this store."""
        # Every view (say, a batch someone kept) refers to the buffer. A view
        # in a young reference cycle (JAX's predict leaves some) goes first.
        gc.collect(1)
        # The references: `self.buffer`, the base of `self.array`, the argument.
        return sys.getrefcount(self.buffer) <= 3


def _fresh_memory(nbytes):
    """A new uint8 buffer of `nbytes`, its pages touched by one thread per core.

    The first write to each page of fresh memory traps to the operating
    system (and on a virtual machine, to its host). Touching the pages from
    several threads first, then writing the rows, took about 0.6 of the time
    of writing the rows alone on the benchmark's 2-core virtual machine
    (`benchmarks/bench_fresh_memory.py`).
    """
    buffer = np.empty(nbytes, dtype=np.uint8)
    _touch_pages(buffer)
    return buffer


def _touch_pages(buffer):
    """Writes to every page of the uint8 array `buffer`, from one thread per core."""
    # At most one part per 64 MiB: a small buffer is not worth a thread.
    parts = np.array_split(buffer, min(os.cpu_count() or 1, 1 + buffer.nbytes // 2**26))
    threads = [threading.Thread(target=_touch, args=(part,)) for part in parts[1:]]
    for thread in threads:
        thread.start()
    _touch(parts[0])
    for thread in threads:
        thread.join()


def _touch(part):
    part[:: mmap.PAGESIZE] = 0  # NumPy lets go of the GIL while it writes


class _DiskStore:
    location = "disk"

    def __init__(self, directory, row_shape, dtype):
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = math.prod(self.row_shape) * self.dtype.itemsize
        self.size = 0
        self.folder = tempfile.mkdtemp(prefix="keras_recursive_ae_cache_", dir=directory)
        self.path = os.path.join(self.folder, "stage_input.bin")
        self._file = open(self.path, "w+b")
        self._lock = threading.Lock()
        # Removes the folder even if `free` is never called (e.g. at exit).
        self._finalizer = weakref.finalize(self, _remove, self._file, self.folder)

    @property
    def nbytes(self):
        return self.size * self.row_bytes

    def write(self, first_row, rows):
        if first_row != self.size:
            raise ValueError(f"A cache file is written in order: row {first_row} after {self.size}.")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        try:
            self._file.write(memoryview(rows).cast("B"))
        except OSError as error:
            raise self._write_error(error) from error
        self.size += len(rows)

    def finish(self):
        try:
            self._file.flush()
        except OSError as error:
            raise self._write_error(error) from error

    def _write_error(self, error):
        return OSError(
            error.errno,
            f"Could not write the stage input cache to {self.path}: {error}. "
            "Pass another cache_dir, cache_dtype='float16' or cache='off'.",
        )

    def read(self, rows):
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.size)
            out = np.empty((stop - start,) + self.row_shape, dtype=self.dtype)
            self._read_into(out, start)
            return out
        out = np.empty((len(rows),) + self.row_shape, dtype=self.dtype)
        # One read per run of consecutive rows.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for begin, end in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            self._read_into(out[begin:end], int(rows[begin]))
        return out

    def _read_into(self, out, first_row):
        view = memoryview(out).cast("B")
        offset = first_row * self.row_bytes
        while len(view):
            if hasattr(os, "preadv"):
                count = os.preadv(self._file.fileno(), [view], offset)
            else:
                with self._lock:
                    self._file.seek(offset)
                    count = self._file.readinto(view)
            if not count:
                raise OSError(f"The stage input cache {self.path} ended early.")
            view, offset = view[count:], offset + count

    def load_into(self, out):
        self._read_into(out, 0)

    def free(self):
        self._finalizer()


def _remove(file, folder):
    file.close()
    shutil.rmtree(folder, ignore_errors=True)


def _data_batches(data, batch_size):
    """The user's images, batch by batch, each with the index of its first row."""
    if is_dataset(data):
        first_row = 0
        for batch in data:
            batch = batch[0] if isinstance(batch, (tuple, list)) else batch
            batch = np.asarray(batch)  # every backend's predict takes NumPy
            yield first_row, batch
            first_row += len(batch)
        return
    for start in range(0, len(data), batch_size):
        yield start, data[start : start + batch_size]


def _store_batches(store, batch_size, backwards=False):
    """A store's rows, batch by batch, each with the index of its first row."""
    floatx = keras.config.floatx()
    starts = range(0, store.size, batch_size)
    for start in reversed(starts) if backwards else starts:
        yield start, store.read(slice(start, start + batch_size)).astype(floatx, copy=False)


def _dataset_capacity(data, first_batch_rows):
    """Images a finite dataset yields at most, or `None` if unknown."""
    cardinality = int(data.cardinality())
    return cardinality * first_batch_rows if cardinality >= 0 else None


def available_memory():
    """Bytes of memory this process can still take, or `None` if unknown.

    `MemAvailable` from `/proc/meminfo` (Linux), bounded by the cgroup
    memory limit minus its usage when the process runs in a container;
    elsewhere `os.sysconf("SC_AVPHYS_PAGES")` (free pages).
    """
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
            if limit != "max" and int(limit) < 2**60:
                found.append(max(int(limit) - usage, 0))
            break
        except (OSError, ValueError):
            continue
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            return None
    return min(found)
