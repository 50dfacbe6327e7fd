import mmap
import os
import weakref

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.checkpoint import SeededBatches
from keras_recursive_ae.stage_inputs import (
    StageBatches,
    StageInputCache,
    _MemoryStore,
    as_tf_dataset,
)

# float16 keeps 11 significant bits (relative spacing 2**-11, about 5e-4):
# after two epochs per stage of a 3-level stack, every trained weight stays
# within this of the float32-cached run, and so does every epoch's loss.
FLOAT16_WEIGHT_ATOL = 2e-3
FLOAT16_LOSS_RTOL = 1e-3


def _images(n=32, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype="float32")


def _counting_dataset(images, batch_size, counter):
    """A batched dataset that counts the images it decodes."""

    def count(x):
        counter.append(1)
        return x

    def decode(x):
        return tf.py_function(count, [x], tf.float32)

    return (
        tf.data.Dataset.from_tensor_slices(images)
        .map(lambda x: tf.ensure_shape(decode(x), images.shape[1:]))
        .batch(batch_size)
    )


def _train(cache, x, epochs=2, shuffle=False, callbacks=None, depth=3, run=True,
           checkpoint_dir=None):
    keras.utils.set_random_seed(1)
    stack = MirroredConvStack(
        filters=(4,) * depth, input_shape=(16, 16, 3), normalization="shared"
    )
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam")
    scope = cache.run() if run and isinstance(cache, StageInputCache) else _nothing()
    with scope:
        history = trainer.fit(
            x, epochs=epochs, batch_size=8, shuffle=shuffle, callbacks=callbacks, verbose=0,
            checkpoint_dir=checkpoint_dir,
        )
    return trainer.model.get_weights(), history.history["loss"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


@pytest.mark.parametrize("mode", ["memory", "disk"])
@pytest.mark.parametrize("run", [True, False])
def test_float32_cache_trains_the_same_weights_as_no_cache(mode, run, tmp_path):
    x = _images()
    reference, reference_loss = _train(StageInputCache("off"), x)
    cache = StageInputCache(mode, directory=tmp_path)
    weights, loss = _train(cache, x, run=run)
    assert [p.location for p in cache.placements] == [mode, mode]
    np.testing.assert_allclose(loss, reference_loss, rtol=1e-5)
    for a, b in zip(weights, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_shuffled_runs_see_the_same_batches_cached_uncached_and_checkpointed(tmp_path):
    # Arrays and caches are read in the run's seeded order, whoever holds them.
    x = _images(36)
    reference, reference_loss = _train(StageInputCache("off"), x, shuffle=True)
    runs = {
        "memory": _train(StageInputCache("memory"), x, shuffle=True),
        "disk": _train(StageInputCache("disk", directory=tmp_path), x, shuffle=True),
        "checkpointed": _train(StageInputCache("off"), x, shuffle=True,
                               checkpoint_dir=tmp_path / "checkpoint"),
    }
    unshuffled, _ = _train(StageInputCache("off"), x, shuffle=False)
    assert any(not np.allclose(a, b) for a, b in zip(unshuffled, reference))
    for name, (weights, loss) in runs.items():
        np.testing.assert_allclose(loss, reference_loss, rtol=1e-5, err_msg=name)
        for a, b in zip(weights, reference):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_as_tf_dataset_yields_the_same_batches_in_order():
    x = _images(21)
    batches = SeededBatches(x, 8, seed=[3, 1], shuffle=True, first_epoch=1, epochs=3)
    dataset = as_tf_dataset(batches)
    assert dataset.element_spec.shape.as_list() == [None, 16, 16, 3]
    read = [batch.numpy() for batch in dataset]
    assert len(read) == len(batches) == 6
    for i, batch in enumerate(read):
        np.testing.assert_array_equal(batch, batches[i])


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("cache", ["memory", "off"])
def test_on_tensorflow_phases_read_arrays_and_caches_through_tf_data(cache, monkeypatch):
    from keras_recursive_ae.stage import StageModel

    received = []
    fit = StageModel.fit

    def recording_fit(self, x=None, **kwargs):
        received.append(type(x))
        return fit(self, x, **kwargs)

    monkeypatch.setattr(StageModel, "fit", recording_fit)
    _train(StageInputCache(cache), _images(), epochs=1)
    assert received and all(issubclass(t, tf.data.Dataset) for t in received), received


def test_float32_cache_of_a_dataset_trains_the_same_weights_as_no_cache():
    x = _images()
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    reference, _ = _train(StageInputCache("off"), dataset)
    cache = StageInputCache("memory")
    weights, _ = _train(cache, dataset)
    # T_0 (the decoded images) is cached too, then T_1 and T_2.
    assert [p.shape for p in cache.placements] == [(32, 16, 16, 3), (32, 8, 8, 4), (32, 4, 4, 4)]
    for a, b in zip(weights, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fine_tuning_after_the_stages_reads_a_cached_dataset_again():
    x = _images()
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    results = []
    for cache in (StageInputCache("off"), StageInputCache("memory")):
        keras.utils.set_random_seed(1)
        stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
        trainer = RecursiveTrainer(stack, cache=cache)
        trainer.compile(optimizer="adam")
        history = trainer.fit(
            dataset, epochs=1, fine_tune_epochs=1, batch_size=8, shuffle=False, verbose=0
        )
        assert history.history["stage"] == [1, 2, "fine_tune"]
        results.append(trainer.model.get_weights())
    # The images are cached again for fine-tuning: T_0, T_1, T_0.
    assert [p.shape[1:] for p in cache.placements] == [(16, 16, 3), (8, 8, 4), (16, 16, 3)]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_float16_cache_stays_within_the_stated_tolerance():
    dataset = tf.data.Dataset.from_tensor_slices(_images()).batch(8)
    reference, reference_loss = _train(StageInputCache("memory"), dataset)
    cache = StageInputCache("memory", dtype="float16")
    weights, loss = _train(cache, dataset)
    assert {p.dtype for p in cache.placements} == {"float16"}
    assert cache.placements[0].nbytes == 32 * 16 * 16 * 3 * 2
    np.testing.assert_allclose(loss, reference_loss, rtol=FLOAT16_LOSS_RTOL)
    differences = [np.max(np.abs(a - b)) for a, b in zip(weights, reference)]
    assert max(differences) <= FLOAT16_WEIGHT_ATOL
    assert max(differences) > 0  # the images really were stored in float16


def test_the_dataset_is_decoded_once_inside_a_run():
    x = _images()
    decoded = []
    _train(StageInputCache("memory"), _counting_dataset(x, 8, decoded), epochs=2)
    # Once to cache T_0; T_1 and T_2 are computed from the cache, never
    # from the images, and no epoch reads the dataset again.
    assert len(decoded) == len(x)
    decoded.clear()
    _train(StageInputCache("memory"), _counting_dataset(x, 8, decoded), epochs=2, run=False)
    # `RecursiveTrainer.fit` opens a run of its own: still decoded once.
    assert len(decoded) == len(x)
    decoded.clear()
    _train(StageInputCache("off"), _counting_dataset(x, 8, decoded), epochs=2)
    # Every epoch of every stage (some backends also peek at a batch or two).
    assert len(decoded) >= 3 * 2 * len(x)


def test_a_tiny_budget_switches_to_disk(tmp_path):
    x = _images()
    cache = StageInputCache("auto", budget=0, directory=tmp_path)
    _train(cache, x)
    assert [p.location for p in cache.placements] == ["disk", "disk"]
    cache = StageInputCache("auto", budget=10**12, directory=tmp_path)
    _train(cache, x)
    assert [p.location for p in cache.placements] == ["memory", "memory"]


@pytest.mark.parametrize("run", [True, False])
def test_the_budget_counts_the_cache_already_held(run, tmp_path):
    # T_1 of the training and of the validation images is 32x8x8x4 float32 =
    # 32 KiB each, T_2 8 KiB. The training images' T_1 takes the budget, and
    # their T_2 is written over it; the validation images' caches go to disk.
    keras.utils.set_random_seed(1)
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(16, 16, 3))
    cache = StageInputCache("auto", budget=32 * 8 * 8 * 4 * 4, directory=tmp_path)
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam")
    # The trainer opens a run of its own when the caller has none.
    with cache.run() if run else _nothing():
        trainer.fit(_images(), epochs=2, batch_size=8, validation_data=_images(seed=1), verbose=0)
    assert [p.location for p in cache.placements] == ["memory", "disk", "memory", "disk"]


class _SeeFiles(keras.callbacks.Callback):
    def __init__(self, folder, explode_in=None):
        super().__init__()
        self.folder, self.explode_in, self.seen = folder, explode_in, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(len(os.listdir(self.folder)))
        if self.model.name == self.explode_in:
            raise RuntimeError("boom")


@pytest.mark.parametrize("run", [True, False])
def test_temporary_files_are_removed_after_training_and_after_an_error(run, tmp_path):
    x = _images()
    see = _SeeFiles(tmp_path)
    _train(StageInputCache("disk", directory=tmp_path), x, callbacks=[see], run=run)
    assert max(see.seen) >= 1  # there were cache files during training
    assert os.listdir(tmp_path) == []
    see = _SeeFiles(tmp_path, explode_in="stage_3")
    with pytest.raises(RuntimeError, match="boom"):
        _train(StageInputCache("disk", directory=tmp_path), x, callbacks=[see], run=run)
    assert max(see.seen) >= 1
    assert os.listdir(tmp_path) == []


def test_a_cache_computed_with_other_weights_is_not_reused():
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(16, 16, 3))
    x = _images()
    cache = StageInputCache("memory")
    with cache.run():
        with cache.inputs(stack.encoder_prefix(1), x, 8):
            pass
        layer = stack.model.get_layer("encoder_conv_1")
        layer.kernel.assign(layer.kernel * 2.0)  # e.g. a fine-tuning pass
        with cache.inputs(stack.encoder_prefix(2), x, 8) as batches:
            cached = np.concatenate([batches[i] for i in range(len(batches))])
    expected = stack.encoder_prefix(2).predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(cached, expected, rtol=1e-5, atol=1e-6)


def test_the_same_data_twice_in_a_stage_is_computed_once():
    stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
    x = _images()
    cache = StageInputCache("memory")
    prefix = stack.encoder_prefix(1)
    with cache.inputs(prefix, x, 8) as train, cache.inputs(prefix, x, 8) as val:
        assert len(cache.placements) == 1
        np.testing.assert_array_equal(train[0], val[0])
    assert cache._entries == {}


def _chained_caches(cache, x, keep_a_batch=False):
    """Caches T_1, T_2, T_3 of a 3-level stack in turn, as greedy stages do.

    Returns, for each cache, the index of the earlier cache whose memory it
    was written into, or `None`.
    """
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(16, 16, 3))
    buffers, written_over, contents, kept = [], [], [], None
    with cache.run():
        for level in (1, 2, 3):
            with cache.inputs(stack.encoder_prefix(level), x, 8) as batches:
                memory = getattr(batches._store, "buffer", None)
                # Weak references: the test must not keep freed memory alive.
                found = (i for i, b in enumerate(buffers) if b() is memory)
                written_over.append(next(found, None))
                buffers.append(weakref.ref(memory) if memory is not None else lambda: None)
                contents.append(np.concatenate([batches[i] for i in range(len(batches))]))
                if level == 1 and keep_a_batch:
                    kept = batches[0]  # a view of the cache, in memory and float32
                    kept_copy = kept.copy()
            del memory, batches
    expected = [stack.encoder_prefix(level).predict(x, verbose=0) for level in (1, 2, 3)]
    for got, want in zip(contents, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if keep_a_batch:
        np.testing.assert_array_equal(kept, kept_copy)
    return written_over


def test_each_cache_is_written_over_the_one_it_is_computed_from():
    # 300 rows: three batches of cache passes (128 rows at least), the last short.
    assert _chained_caches(StageInputCache("memory"), _images(300)) == [None, 0, 0]


def test_a_cache_someone_still_reads_is_not_written_over():
    written_over = _chained_caches(StageInputCache("memory"), _images(300), keep_a_batch=True)
    assert written_over == [None, None, 1]


def test_a_cache_written_over_its_source_takes_no_more_memory(tmp_path):
    # T_1 is 32x8x8x4 float32 = 32 KiB, T_2 8 KiB, T_3 2 KiB.
    cache = StageInputCache("auto", budget=32 * 1024, directory=tmp_path)
    assert _chained_caches(cache, _images()) == [None, 0, 0]
    assert [p.location for p in cache.placements] == ["memory"] * 3
    # With 31 KiB T_1 goes to disk; T_2 fits, and T_3 is written over it.
    cache = StageInputCache("auto", budget=31 * 1024, directory=tmp_path)
    assert _chained_caches(cache, _images()) == [None, None, 1]
    assert [p.location for p in cache.placements] == ["disk", "memory", "memory"]


def test_a_larger_cache_is_written_over_the_images_when_the_run_reserves_room():
    # T_1 (8x8x16) has more values per row than the images (16x16x3): it is
    # written last row first, over the cached images of a dataset.
    stack = MirroredConvStack(filters=(16, 4), input_shape=(16, 16, 3))
    x = _images(300)
    expected = stack.encoder_prefix(1).predict(x, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(50)
    for largest_row, same_memory in (((8, 8, 16), True), (None, False)):
        cache = StageInputCache("memory")
        with cache.run(largest_row):
            with cache.inputs(None, dataset, 8) as images:
                memory = weakref.ref(images._store.buffer)
                np.testing.assert_array_equal(images.read(slice(0, 300)), x)
            del images
            with cache.inputs(stack.encoder_prefix(1), dataset, 8) as t_1:
                assert (t_1._store.buffer is memory()) is same_memory
                np.testing.assert_allclose(t_1.read(slice(0, 300)), expected, rtol=1e-5, atol=1e-6)
            del t_1
    assert cache.placements[0].nbytes == 300 * 16 * 16 * 3 * 4  # the images' size, not the room


def test_the_room_reserved_for_larger_rows_counts_against_the_budget(tmp_path):
    # The images take 300x16x16x3 float32 = 900 KiB, T_1 1,200 KiB. With a
    # budget of 1,000 KiB the images get no room for T_1, and T_1 goes to disk.
    stack = MirroredConvStack(filters=(16, 4), input_shape=(16, 16, 3))
    dataset = tf.data.Dataset.from_tensor_slices(_images(300)).batch(50)
    cache = StageInputCache("auto", budget=1000 * 1024, directory=tmp_path)
    with cache.run((8, 8, 16)):
        with cache.inputs(None, dataset, 8) as images:
            assert images._store.buffer.nbytes == 300 * 16 * 16 * 3 * 4
        del images
        with cache.inputs(stack.encoder_prefix(1), dataset, 8):
            pass
    assert [p.location for p in cache.placements] == ["memory", "disk"]


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_fresh_cache_memory_is_touched_before_rows_are_written():
    before = _resident_bytes()
    store = _MemoryStore(512, (256, 256), "float32")  # 128 MiB, no row written yet
    assert store.size == 0
    assert _resident_bytes() - before >= 0.9 * store.buffer.nbytes


def test_batches_read_the_same_rows_from_memory_and_disk(tmp_path):
    stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
    x = _images(37)
    prefix = stack.encoder_prefix(1)
    expected = prefix.predict(x, batch_size=8, verbose=0)
    rows = np.sort(np.random.default_rng(3).choice(37, size=12, replace=False))
    for mode in ("memory", "disk"):
        cache = StageInputCache(mode, directory=tmp_path)
        with cache.inputs(prefix, x, 8) as batches:
            assert isinstance(batches, StageBatches) and batches.location == mode
            assert len(batches) == 5 and batches[4].shape == (5, 8, 8, 4)
            for _ in range(2):  # a batch is the same whenever it is read
                read = np.concatenate([batches[i] for i in range(len(batches))])
                np.testing.assert_allclose(read, expected, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(batches.read(rows), expected[rows], rtol=1e-6, atol=1e-6)
            path = batches.path
        assert path is None or not os.path.exists(path)


def test_a_dataset_of_unknown_cardinality_is_cached():
    x = _images(20)
    dataset = tf.data.Dataset.from_tensor_slices(x).filter(lambda _: True).batch(8)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    for mode in ("auto", "disk"):
        cache = StageInputCache(mode)
        with cache.inputs(None, dataset, 8) as batches:
            rows = np.concatenate([batches[i] for i in range(len(batches))])
        np.testing.assert_array_equal(rows, x)
        assert cache.placements[0].location == ("memory" if mode == "auto" else "disk")


def test_values_beyond_float16_raise_a_clear_error():
    dataset = tf.data.Dataset.from_tensor_slices(_images(8) * 1e5).batch(4)
    cache = StageInputCache("memory", dtype="float16")
    with pytest.raises(ValueError, match="cache_dtype='float32'"):
        with cache.inputs(None, dataset, 4):
            pass


def test_numpy_images_at_the_first_stage_are_not_copied():
    x = _images()
    cache = StageInputCache("memory")
    with cache.inputs(None, x, 8) as data:
        assert data is x
    assert cache.placements == []


def test_invalid_cache_arguments():
    stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="cache='fast'"):
        RecursiveTrainer(stack, cache="fast")
    for budget in (-1, True, 1.5, "1GB"):
        with pytest.raises(ValueError, match=f"cache_budget={budget!r}"):
            RecursiveTrainer(stack, cache_budget=budget)
    for dtype in ("int8", "bfloat16", "half-ish"):
        with pytest.raises(ValueError, match=f"cache_dtype={dtype!r}"):
            RecursiveTrainer(stack, cache_dtype=dtype)
    with pytest.raises(ValueError, match="cache_dir='/no/such/folder'"):
        RecursiveTrainer(stack, cache_dir="/no/such/folder")
    with pytest.raises(ValueError, match="cache_budget=1024"):
        RecursiveTrainer(stack, cache=StageInputCache("disk"), cache_budget=1024)
    assert RecursiveTrainer(stack, cache_dtype=np.float16)._cache.dtype == "float16"


def test_each_stage_is_traced_once_not_once_per_epoch(monkeypatch):
    from keras_recursive_ae.stage import StageModel

    if keras.backend.backend() == "torch":
        pytest.skip("Keras runs torch eagerly here: nothing is traced")
    traced = []
    train_step = StageModel.train_step

    def counting_train_step(self, *args):
        traced.append(self.name)  # runs in Python only while being traced
        return train_step(self, *args)

    monkeypatch.setattr(StageModel, "train_step", counting_train_step)
    x = _images(36)  # 36 = 4 batches of 8 and a partial one of 4
    counts = []
    for epochs in (1, 4):
        traced.clear()
        _train(StageInputCache("memory"), x, epochs=epochs)
        counts.append({name: traced.count(name) for name in traced})
    assert counts[0] == counts[1]
    assert set(counts[1]) == {"stage_1", "stage_2", "stage_3"}
    if keras.backend.backend() == "tensorflow":
        # Once: the stage's optimizer is built before `fit`, so TensorFlow
        # does not trace the step again after its first trace built it.
        assert set(counts[1].values()) == {1}
    else:
        assert max(counts[1].values()) <= 2  # JAX traces a partial last batch again
