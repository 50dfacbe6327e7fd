import os
import tracemalloc

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.trainers.seeded_batches import SeededBatches, as_tf_dataset
from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

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


def _train(cache, x, epochs=2, shuffle=False, callbacks=None, depth=3, checkpoint_dir=None):
    keras.utils.set_random_seed(1)
    stack = MirroredConvStack(filters=(4,) * depth, input_shape=(16, 16, 3), normalization="shared")
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam")
    history = trainer.fit(
        x,
        epochs=epochs,
        batch_size=8,
        shuffle=shuffle,
        callbacks=callbacks,
        verbose=0,
        checkpoint_dir=checkpoint_dir,
    )
    return trainer.model.get_weights(), history.history["loss"]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_float32_cache_trains_the_same_weights_as_no_cache(mode, tmp_path):
    x = _images()
    reference, reference_loss = _train(StageInputCache("off"), x)
    cache = StageInputCache(mode, directory=tmp_path)
    weights, loss = _train(cache, x)
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
        "checkpointed": _train(
            StageInputCache("off"), x, shuffle=True, checkpoint_dir=tmp_path / "checkpoint"
        ),
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
    from keras_recursive_ae.trainers.stage_models import StageModel

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
        assert history.history["stage"] == [1, 2, 3]
        results.append(trainer.model.get_weights())
    # Stage 1 reads the cached images, stage 2 T_1; fine-tuning reads the dataset.
    assert [p.shape[1:] for p in cache.placements] == [(16, 16, 3), (8, 8, 4)]
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


def test_the_budget_counts_the_caches_held(tmp_path):
    # T_1 of the training and of the validation images is 32x8x8x4 float32 =
    # 32 KiB each, T_2 8 KiB. The training images' T_1 takes the budget and
    # the validation images' T_1 goes to disk. The training images' T_2 is
    # written over their T_1, whose 32 KiB it keeps, so the validation
    # images' T_2 goes to disk too.
    keras.utils.set_random_seed(1)
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(16, 16, 3))
    cache = StageInputCache("auto", budget=32 * 8 * 8 * 4 * 4, directory=tmp_path)
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam")
    trainer.fit(_images(), epochs=2, batch_size=8, validation_data=_images(seed=1), verbose=0)
    assert [p.location for p in cache.placements] == ["memory", "disk", "memory", "disk"]


class _SeeFiles(keras.callbacks.Callback):
    def __init__(self, folder, explode_in=None):
        super().__init__()
        self.folder, self.explode_in, self.seen = folder, explode_in, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(len(os.listdir(self.folder)))
        if self.epoch == self.explode_in:
            raise RuntimeError("boom")


def test_temporary_files_are_removed_after_training_and_after_an_error(tmp_path):
    x = _images()
    see = _SeeFiles(tmp_path)
    _train(StageInputCache("disk", directory=tmp_path), x, callbacks=[see])
    assert max(see.seen) >= 1  # there were cache files during training
    assert os.listdir(tmp_path) == []
    see = _SeeFiles(tmp_path, explode_in=4)  # stage 3's first epoch
    with pytest.raises(RuntimeError, match="boom"):
        _train(StageInputCache("disk", directory=tmp_path), x, callbacks=[see])
    assert max(see.seen) >= 1
    assert os.listdir(tmp_path) == []


def test_each_cache_is_computed_from_the_one_before(tmp_path):
    stack = MirroredConvStack(filters=(4, 4, 4), input_shape=(16, 16, 3))
    x = _images(300)  # three batches of cache passes (128 rows at least), the last short
    for mode in ("memory", "disk"):
        cache = StageInputCache(mode, directory=tmp_path)
        tensor = x
        for level in (1, 2, 3):
            computed = cache.next(stack.encoder_levels[level - 1], tensor, batch_size=8)
            expected = stack.encoder_prefix(level).predict(x, verbose=0)
            assert isinstance(computed, np.memmap) == (mode == "disk")
            np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-6)
            cache.free(tensor)
            tensor = computed
        cache.free(tensor)
        assert os.listdir(tmp_path) == []


def test_seeded_batches_read_the_same_rows_from_memory_and_disk(tmp_path):
    stack = MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3))
    x = _images(37)
    expected = stack.encoder_prefix(1).predict(x, batch_size=8, verbose=0)
    for mode in ("memory", "disk"):
        cache = StageInputCache(mode, directory=tmp_path)
        t_1 = cache.next(stack.encoder_levels[0], x, batch_size=8)
        batches = SeededBatches(t_1, 8, seed=[1], shuffle=True, first_epoch=0, epochs=2)
        assert len(batches) == 10 and batches[4].shape == (5, 8, 8, 4)
        for epoch in range(2):
            order = batches.order(epoch)
            read = np.concatenate([batches[epoch * 5 + i] for i in range(5)])
            rows = np.concatenate([np.sort(order[i * 8 : (i + 1) * 8]) for i in range(5)])
            np.testing.assert_allclose(read, expected[rows], rtol=1e-6, atol=1e-6)
        cache.free(t_1)


def test_a_dataset_of_unknown_cardinality_is_cached():
    x = _images(20)
    dataset = tf.data.Dataset.from_tensor_slices(x).filter(lambda _: True).batch(8)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    for mode in ("auto", "disk"):
        cache = StageInputCache(mode)
        rows = cache.images(dataset, 8)
        np.testing.assert_array_equal(rows, x)
        cache.free(rows)
        assert cache.placements[0].location == ("memory" if mode == "auto" else "disk")


def test_values_beyond_float16_raise_a_clear_error():
    dataset = tf.data.Dataset.from_tensor_slices(_images(8) * 1e5).batch(4)
    cache = StageInputCache("memory", dtype="float16")
    with pytest.raises(ValueError, match="cache_dtype='float32'"):
        cache.images(dataset, 4)


def test_numpy_images_at_the_first_stage_are_not_copied():
    x = _images()
    cache = StageInputCache("memory")
    assert cache.images(x, 8) is x
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
    from keras_recursive_ae.trainers.stage_models import StageModel

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


@pytest.mark.backend("tensorflow")
def test_a_finished_phase_lets_go_of_what_it_read(monkeypatch):
    # TensorFlow keeps a tf.numpy_function's Python function for good: the
    # pipeline must not hold the batches (and their cache) by it.
    import gc
    import weakref

    from keras_recursive_ae.trainers import seeded_batches as batches

    made, init = [], batches.SeededBatches.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(batches.SeededBatches, "__init__", recording_init)
    _train(StageInputCache("memory"), tf.data.Dataset.from_tensor_slices(_images()).batch(8))
    gc.collect()
    assert len(made) == 3 and [ref() for ref in made] == [None, None, None]


def test_a_users_memory_mapped_images_are_never_deleted(tmp_path):
    # Stage 1 reads the user's array itself (T_0 is not copied): when the run
    # ends there, that array must not be taken for a cache file and deleted.
    folder = tmp_path / "users_data"
    folder.mkdir()
    x = np.memmap(folder / "faces.bin", dtype="float32", mode="w+", shape=(32, 8, 8, 1))
    x[:] = np.random.default_rng(0).random(x.shape)
    x.flush()
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1)))
    trainer.compile()
    trainer.fit(x, epochs=[1, 0], batch_size=8, verbose=0)
    assert (folder / "faces.bin").exists()


def _peak_bytes_of_greedy_fit(images, filters, cache):
    """The most bytes NumPy held at once during a greedy fit (tracemalloc)."""
    stack = MirroredConvStack(filters=filters, input_shape=images.shape[1:])
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam")
    # A dataset, as `load_lfw` gives: its images are the first cache, `T_0`.
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(200)
    tracemalloc.start()
    try:
        trainer.fit(dataset, epochs=1, verbose=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_cache_is_written_over_the_one_it_is_computed_from():
    # As in the paper's network, T_1 (16x16x16 per image) is larger than the
    # images T_0 (32x32x3): 106 and 141 MB of 8,600 images. Held together,
    # as T_1 is computed from T_0, they would take 247 MB. (Tracing and
    # compiling the stages take up to about 25 MB besides, under JAX.)
    images = _images(8600, shape=(32, 32, 3))
    t_0, t_1 = images.nbytes, len(images) * 16 * 16 * 16 * 4
    peak = _peak_bytes_of_greedy_fit(images, (16, 8), StageInputCache("memory"))
    assert peak < max(t_0, t_1) + min(t_0, t_1) / 2, (peak, t_0, t_1)
    # Cached on disk, nothing of that size is held in memory.
    assert _peak_bytes_of_greedy_fit(images, (16, 8), StageInputCache("disk")) < t_0 / 2


def test_caches_written_over_their_source_hold_the_right_values():
    # Growing (T_1 larger than T_0: written from the last batch back) and
    # shrinking (T_2 smaller: in order), 300 rows in batches of 128, the last short.
    stack = MirroredConvStack(filters=(16, 4), input_shape=(16, 16, 3))
    x = _images(300)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(50)
    cache = StageInputCache("memory")
    room = max(16 * 16 * 3, 8 * 8 * 16)
    tensor = cache.images(dataset, batch_size=8, room=room)
    buffer = tensor.base
    for level in (1, 2):
        tensor = cache.next(stack.encoder_levels[level - 1], tensor, batch_size=8, room=room)
        assert tensor.base is buffer  # no second buffer
        expected = stack.encoder_prefix(level).predict(x, verbose=0)
        np.testing.assert_allclose(tensor, expected, rtol=1e-5, atol=1e-6)
    cache.free(tensor)
