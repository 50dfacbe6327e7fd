"""The schedules beyond the paper: joint, end-to-end and fine-tuning."""

import keras
import numpy as np
import pytest

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.datasets.lfw import load_lfw
from keras_recursive_ae.metrics import sum_squared_error
from keras_recursive_ae.trainers.stage_models import JointModel


@pytest.fixture(scope="module")
def faces(request):
    from conftest import LFW_DIR

    if not LFW_DIR.is_dir():
        pytest.skip(f"the real LFW folder is absent: {LFW_DIR}")
    splits = load_lfw(LFW_DIR, image_size=16, max_images=300, seed=1)
    return splits.numpy("train"), splits.numpy("validation")


def _stack(**kwargs):
    return MirroredConvStack(filters=(8, 16), input_shape=(16, 16, 3), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["greedy", "joint", "end_to_end"])
def test_every_schedule_lowers_its_loss_on_real_faces(faces, schedule):
    train, validation = faces
    trainer = RecursiveTrainer(_stack(normalization="shared"), schedule=schedule)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = trainer.fit(train, epochs=4, batch_size=16, validation_data=validation, verbose=0)
    loss = np.array(history.history["loss"])
    stages = history.history["stage"]
    if schedule == "greedy":
        assert stages == [1] * 4 + [2] * 4
        assert loss[3] < loss[0] and loss[7] < loss[4]
    else:
        assert stages == [3] * 4  # one phase, all n = 2 levels at once: n + 1
        assert loss[-1] < loss[0]
    assert np.all(np.isfinite(history.history["val_loss"]))


def test_joint_and_end_to_end_freeze_nothing():
    for schedule in ("joint", "end_to_end"):
        stack = _stack(normalization="batch")
        trainer = RecursiveTrainer(stack, schedule=schedule)
        trainer.compile(optimizer=keras.optimizers.SGD(0.1))
        before = [np.array(w) for w in stack.trainable_weights]
        trainer.fit(np.random.rand(16, 16, 16, 3), epochs=1, batch_size=8, verbose=0)
        after = stack.trainable_weights
        assert all(not np.array_equal(a, b) for a, b in zip(before, after)), schedule


def test_fine_tuning_follows_greedy_and_unfreezes_everything():
    stack = _stack(normalization="shared")
    trainer = RecursiveTrainer(stack)
    trainer.compile()
    snapshots, variables = [], list(stack.trainable_variables)

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            assert self.model is stack  # the whole autoencoder, in every phase
            snapshots.append([np.array(v) for v in variables])

    start = [np.array(v) for v in variables]
    history = trainer.fit(
        np.random.rand(16, 16, 16, 3),
        epochs=[1, 2],
        fine_tune_epochs=2,
        batch_size=8,
        callbacks=[Watch()],
        verbose=0,
    )
    assert history.history["stage"] == [1, 2, 2, 3, 3]  # fine-tuning is phase n + 1
    moved = [
        {i for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b)}
        for before, after in zip([start] + snapshots, snapshots)
    ]
    everything = set(range(len(start)))
    assert moved[3] == everything == moved[4]  # fine-tuning trains every weight
    assert moved[1] < everything  # stage 2 left level 1 frozen


def test_joint_reports_every_level_and_sums_the_weighted_terms():
    stack = _stack()
    x = np.random.default_rng(0).random((8, 16, 16, 3), dtype="float32")
    values = {}
    for weights in ([1.0, 1.0], [1.0, 0.0], [0.0, 2.0]):
        trainer = RecursiveTrainer(stack, schedule="joint", level_weights=weights)
        trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: same weights
        history = trainer.fit(x, epochs=1, batch_size=8, shuffle=False, verbose=0)
        values[tuple(weights)] = {k: v[0] for k, v in history.history.items() if k != "stage"}
    both = values[(1.0, 1.0)]
    level_1, level_2 = both["level_1_loss"], both["level_2_loss"]
    assert level_1 > 0 and level_2 > 0
    np.testing.assert_allclose(both["loss"], level_1 + level_2, rtol=1e-5)
    np.testing.assert_allclose(values[(1.0, 0.0)]["loss"], level_1, rtol=1e-5)
    np.testing.assert_allclose(values[(0.0, 2.0)]["loss"], 2 * level_2, rtol=1e-5)
    rebuilt = stack.predict(x, verbose=0)
    np.testing.assert_allclose(level_1, np.mean((rebuilt - x) ** 2), rtol=1e-4)


def test_joint_targets_are_held_constant_by_default():
    stack = _stack()
    x = np.random.default_rng(0).random((8, 16, 16, 3), dtype="float32")
    encoder_1 = stack.get_layer("encoder_conv_1")
    moved = {}
    for stop in (True, False):
        start = [np.array(w) for w in stack.weights]
        trainer = RecursiveTrainer(
            stack, schedule="joint", level_weights=[0.0, 1.0], stop_target_gradients=stop
        )
        trainer.compile(optimizer=keras.optimizers.SGD(0.1))
        trainer.fit(x, epochs=1, batch_size=8, verbose=0)
        # Only the level-2 term, mse(D_2(E_2(T_1)), T_1): E_1 learns through
        # the input T_1 in both cases, and through the target only if it is
        # not held constant.
        moved[stop] = np.array(encoder_1.kernel)
        stack.set_weights(start)
    assert not np.array_equal(moved[True], moved[False])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": "stacked"}, "schedule='stacked'"),
        ({"schedule": "joint", "level_weights": [1.0]}, r"level_weights=\[1.0\]"),
        ({"schedule": "joint", "level_weights": [0, 0]}, r"level_weights=\[0, 0\]"),
        ({"schedule": "joint", "level_weights": [1, -1]}, r"level_weights=\[1, -1\]"),
    ],
)
def test_invalid_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecursiveTrainer(_stack(), **kwargs)


def test_invalid_fit_arguments_for_schedules():
    x = np.random.rand(4, 16, 16, 3)
    trainer = RecursiveTrainer(_stack(), schedule="end_to_end")
    trainer.compile()
    with pytest.raises(ValueError, match=r"fine_tune_epochs=2"):
        trainer.fit(x, fine_tune_epochs=2, verbose=0)
    with pytest.raises(ValueError, match=r"epochs=\[1, 2\]"):
        trainer.fit(x, epochs=[1, 2], verbose=0)
    greedy = RecursiveTrainer(_stack())
    greedy.compile()
    with pytest.raises(ValueError, match="fine_tune_epochs=-1"):
        greedy.fit(x, fine_tune_epochs=-1, verbose=0)


def test_joint_model_of_a_single_level_is_the_image_loss():
    stack = MirroredConvStack(filters=(4,), input_shape=(8, 8, 1))
    model = JointModel(stack, [1.0])
    model.compile(optimizer="sgd")
    x = np.random.rand(4, 8, 8, 1).astype("float32")
    loss = model.evaluate(x, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        loss["loss"], np.mean((stack.predict(x, verbose=0) - x) ** 2), rtol=1e-5
    )


class _LearningRates(keras.callbacks.Callback):
    """Records the running phase's optimizer class and learning rate per epoch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.seen.append((type(optimizer).__name__, round(rate, 8)))


def test_fine_tuning_runs_at_a_tenth_of_the_learning_rate_by_default():
    trainer = RecursiveTrainer(_stack())
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3))
    rates = _LearningRates()
    x = np.random.rand(16, 16, 16, 3)
    trainer.fit(x, epochs=1, fine_tune_epochs=2, batch_size=8, callbacks=[rates], verbose=0)
    assert rates.seen == [("Adam", 2e-3)] * 2 + [("Adam", 2e-4)] * 2
    trainer.compile(optimizer="rmsprop")  # a name: Keras' default rate, 1e-3
    rates.seen.clear()
    trainer.fit(x, epochs=[0, 1], fine_tune_epochs=1, batch_size=8, callbacks=[rates], verbose=0)
    assert rates.seen == [("RMSprop", 1e-3), ("RMSprop", 1e-4)]
    # A LossScaleOptimizer (mixed precision) stays one; the rate it wraps is scaled.
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(5e-3))
    trainer.compile(optimizer=scaled)
    rates.seen.clear()
    trainer.fit(x, epochs=[0, 1], fine_tune_epochs=1, batch_size=8, callbacks=[rates], verbose=0)
    assert rates.seen == [("LossScaleOptimizer", 5e-3), ("LossScaleOptimizer", 5e-4)]


def test_fine_tune_optimizer_is_the_fine_tuning_pass_s_own():
    trainer = RecursiveTrainer(_stack())
    fine_tune = keras.optimizers.SGD(0.05)
    trainer.compile(optimizer="adam", fine_tune_optimizer=fine_tune)
    rates = _LearningRates()
    x = np.random.rand(16, 16, 16, 3)
    for _ in range(2):  # a fresh copy each time: the instance given is never stepped
        rates.seen.clear()
        trainer.fit(x, epochs=1, fine_tune_epochs=1, batch_size=8, callbacks=[rates], verbose=0)
        assert rates.seen == [("Adam", 1e-3), ("Adam", 1e-3), ("SGD", 0.05)]
    assert int(fine_tune.iterations) == 0


def test_a_learning_rate_schedule_needs_an_explicit_fine_tune_optimizer():
    stack = _stack()
    trainer = RecursiveTrainer(stack)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule))
    before = [np.array(w) for w in stack.weights]
    with pytest.raises(ValueError, match=r"fine_tune_optimizer=.*ExponentialDecay"):
        trainer.fit(np.random.rand(8, 16, 16, 3), epochs=1, fine_tune_epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, stack.weights))  # no stage ran
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), fine_tune_optimizer="sgd")
    history = trainer.fit(np.random.rand(8, 16, 16, 3), epochs=1, fine_tune_epochs=1, verbose=0)
    assert history.history["stage"] == [1, 2, 3]
    with pytest.raises(ValueError, match="nadamm"):
        trainer.compile(fine_tune_optimizer="nadamm")


def _held_out_sse(model, images):
    rebuilt = model.predict(images, batch_size=64, verbose=0)
    return float(np.mean(sum_squared_error(images, rebuilt)))


@pytest.mark.slow
def test_fine_tuning_by_default_improves_a_well_trained_greedy_model(lfw_dir):
    # A fresh Adam at the stages' rate (the default before) took this greedy
    # model from 311 to 449 per held-out face in one epoch.
    splits = load_lfw(lfw_dir, image_size=64, max_images=500, validation_split=0.0, seed=0)
    train, held_out = splits.numpy("train"), splits.numpy("test")
    keras.utils.set_random_seed(0)
    trainer = RecursiveTrainer(MirroredConvStack.paper(input_shape=(64, 64, 3)))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    trainer.fit(train, epochs=8, batch_size=32, verbose=0)
    greedy = _held_out_sse(trainer.model, held_out)
    trainer.fit(train, epochs=0, fine_tune_epochs=1, batch_size=32, verbose=0)
    assert _held_out_sse(trainer.model, held_out) < 0.9 * greedy


def test_joint_default_weighs_inner_levels_as_relative_errors_a_ninth_in_all():
    stack = MirroredConvStack(filters=(4, 8, 8), input_shape=(16, 16, 3))
    x = np.random.default_rng(0).random((8, 16, 16, 3), dtype="float32")
    trainer = RecursiveTrainer(stack, schedule="joint")
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: same weights
    logs = trainer.fit(x, epochs=1, batch_size=8, shuffle=False, verbose=0).history
    tensors = stack.level_tensors_model().predict(x, verbose=0)
    variances = [x.var()] + [t.var() for t in tensors[3:]]  # T_0, T_1, T_2
    expected = logs["level_1_loss"][0] + sum(
        (1 / 9) / 2 * variances[0] / variances[k - 1] * logs[f"level_{k}_loss"][0] for k in (2, 3)
    )
    np.testing.assert_allclose(logs["loss"][0], expected, rtol=1e-4)


def test_joint_default_weights_never_exceed_their_value_before_training():
    # Recomputed on every batch without a ceiling, an inner level's weight grew
    # as the encoder's tensor shrank, and the inner levels took the loss over
    # at 128x128 (docs/schedules.md, "Joint").
    stack = MirroredConvStack(filters=(4, 8, 8), input_shape=(16, 16, 3))
    x = np.random.default_rng(0).random((16, 16, 16, 3), dtype="float32")
    model = JointModel(stack, None)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.adapt(x)
    start = np.array(model.weight_ceilings)
    conv = stack.get_layer("encoder_conv_1")  # T_1 shrinks tenfold
    conv.kernel.assign(np.array(conv.kernel) / 10)
    conv.bias.assign(np.array(conv.bias) / 10)
    tensors = stack.level_tensors_model().predict(x, verbose=0)
    variances = np.array([x.var()] + [t.var() for t in tensors[3:]])
    now = np.concatenate([[1.0], (1 / 9) / 2 * variances[0] / (variances[1:] + 1e-6)])
    assert now[1] > 2 * start[1]  # the ceiling holds level 2 at its start
    logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    used = np.minimum(start, now)
    expected = sum(w * logs[f"level_{k}_loss"] for k, w in enumerate(used, start=1))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    np.testing.assert_array_equal(np.array(model.weight_ceilings), start)


@pytest.mark.slow
@pytest.mark.parametrize("size", [16, 64])
def test_joint_by_default_learns_the_image_as_fast_as_end_to_end(lfw_dir, size):
    # At 16x16 equal level weights (the default before last) ended at 30 per
    # held-out face, end to end at 8.7. At 64x64 weights recomputed on every
    # batch without a ceiling were 14% behind end to end after the first
    # epoch (319.8 against 279.8), 5% ahead with it.
    splits = load_lfw(lfw_dir, image_size=size, max_images=2000, validation_split=0.0, seed=0)
    train, held_out = splits.numpy("train"), splits.numpy("test")
    keras.utils.set_random_seed(0)
    start = MirroredConvStack.paper(input_shape=(size, size, 3)).get_weights()
    curves = {}
    for schedule in ("end_to_end", "joint"):
        keras.utils.set_random_seed(0)
        stack = MirroredConvStack.paper(input_shape=(size, size, 3))
        stack.set_weights(start)
        trainer = RecursiveTrainer(stack, schedule=schedule)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
        curve = curves[schedule] = []
        score = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_, c=curve, m=stack: c.append(_held_out_sse(m, held_out))
        )
        trainer.fit(train, epochs=3, batch_size=32, callbacks=[score], verbose=0)
    assert all(j <= 1.1 * e for j, e in zip(curves["joint"], curves["end_to_end"])), curves
