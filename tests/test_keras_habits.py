"""A greedy fit is one Keras training run: the user's callbacks, arguments and models."""

import csv
import warnings

import keras
import numpy as np
import pytest
from conftest import run_in_fresh_process

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

layers = keras.layers


def _images(n=32, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype="float32")


def _users_conv_pair():
    """Conv2D -> BatchNormalization -> LeakyReLU -> Dropout per level, as users write it."""

    def block(layer):
        return keras.Sequential(
            [layer, layers.BatchNormalization(), layers.LeakyReLU(), layers.Dropout(0.1)]
        )

    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            block(layers.Conv2D(8, 3, strides=2, padding="same")),
            block(layers.Conv2D(16, 3, strides=2, padding="same")),
        ]
    )
    decoder = keras.Sequential(
        [
            block(layers.Conv2DTranspose(8, 3, strides=2, padding="same")),
            layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid"),
        ]
    )
    return encoder, decoder


def _fit(callbacks, **kwargs):
    with pytest.warns(UserWarning, match="contain Dropout"):  # the pair has it on purpose
        trainer = RecursiveTrainer(*_users_conv_pair())
    trainer.compile(optimizer="adam", loss="mse")
    x = _images()
    kwargs.setdefault("epochs", [2, 2])
    history = trainer.fit(
        x, batch_size=8, validation_data=x[:8], callbacks=callbacks, verbose=0, **kwargs
    )
    return trainer, history


def test_model_checkpoint_keeps_one_file_per_epoch_of_the_run_and_it_loads(tmp_path):
    pattern = str(tmp_path / "ep{epoch:02d}.keras")
    trainer, _ = _fit([keras.callbacks.ModelCheckpoint(pattern)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ep01.keras", "ep02.keras", "ep03.keras", "ep04.keras"]
    x = _images(4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", trainer.model.predict(x, verbose=0))
    out = run_in_fresh_process(
        f"""
import numpy as np, keras
import keras_recursive_ae  # registers SymmetricAutoencoder, the class of the saved model
model = keras.saving.load_model({str(tmp_path / "ep04.keras")!r})  # safe mode on
x = np.load({str(tmp_path / "x.npy")!r})
np.testing.assert_allclose(model.predict(x, verbose=0), np.load({str(tmp_path / "expected.npy")!r}),
                           rtol=1e-5, atol=1e-6)
print(model.input_shape, model.output_shape)
"""
    )
    assert "(None, 16, 16, 3) (None, 16, 16, 3)" in out


def test_csv_logger_has_a_row_per_epoch_of_every_stage_with_the_stage(tmp_path):
    path = tmp_path / "log.csv"
    _fit([keras.callbacks.CSVLogger(str(path))])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1", "2", "3"]
    assert [float(row["stage"]) for row in rows] == [1, 1, 2, 2]
    assert all(float(row["val_image_loss"]) > 0 for row in rows)


def test_tensorboard_steps_are_distinct_across_stages(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit([keras.callbacks.TensorBoard(str(tmp_path))])
    events = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0})
    events.Reload()
    steps = [event.step for event in events.Tensors("epoch_loss")]
    assert steps == [0, 1, 2, 3]
    stages = [
        float(
            keras.ops.convert_to_numpy(
                __import__("tensorboard").util.tensor_util.make_ndarray(e.tensor_proto)
            )
        )
        for e in events.Tensors("epoch_stage")
    ]
    assert stages == [1, 1, 2, 2]


def test_callbacks_begin_and_end_once_and_see_the_full_autoencoder():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("begin", self.model.name))

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, logs["stage"], self.model.output_shape))

        def on_train_end(self, logs=None):
            seen.append(("end", self.model.name))

    trainer, _ = _fit([Record()])
    name = trainer.model.name
    full = (None, 16, 16, 3)
    assert seen == [
        ("begin", name),
        (0, 1, full),
        (1, 1, full),
        (2, 2, full),
        (3, 2, full),
        ("end", name),
    ]


def test_val_image_loss_is_the_full_models_loss_and_picks_the_best_autoencoder(tmp_path):
    path = tmp_path / "best.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(path), monitor="val_image_loss", mode="min", save_best_only=True
    )
    trainer, history = _fit([checkpoint])
    losses = history.history["val_image_loss"]
    assert len(losses) == 4
    rebuilt = trainer.model.predict(_images()[:8], verbose=0)
    np.testing.assert_allclose(losses[-1], np.mean((rebuilt - _images()[:8]) ** 2), rtol=1e-4)
    best = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.mean((best.predict(_images()[:8], verbose=0) - _images()[:8]) ** 2),
        min(losses),
        rtol=1e-4,
    )


def test_val_image_loss_takes_a_loss_object_as_compile_does():
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3)))
    trainer.compile(loss=keras.losses.MeanAbsoluteError())
    x = _images()
    history = trainer.fit(x, epochs=1, batch_size=8, validation_data=x[:8], verbose=0)
    rebuilt = trainer.model.predict(x[:8], verbose=0)
    np.testing.assert_allclose(
        history.history["val_image_loss"][-1], np.mean(np.abs(rebuilt - x[:8])), rtol=1e-4
    )


def test_early_stopping_ends_the_stage_not_the_run():
    stop_at_once = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    _, history = _fit([stop_at_once], epochs=[3, 3])
    # The first epoch sets the best loss; the second does not beat it by 1e9.
    # Stage 2 starts, and its first epoch does not beat stage 1's best either.
    assert history.history["stage"] == [1, 1, 2]


def test_backup_and_restore_is_refused_pointing_to_checkpoint_dir(tmp_path):
    with pytest.raises(ValueError, match="BackupAndRestore.*checkpoint_dir"):
        _fit([keras.callbacks.BackupAndRestore(str(tmp_path))])


def test_initial_epoch_starts_the_run_there():
    _, history = _fit(None, initial_epoch=1)
    assert history.epoch == [1, 2, 3]
    assert history.history["stage"] == [1, 2, 2]


def test_steps_per_epoch_and_validation_split_are_honoured():
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3)))
    trainer.compile()
    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    history = trainer.fit(
        _images(40),
        epochs=1,
        batch_size=8,
        steps_per_epoch=2,
        validation_split=0.2,
        callbacks=[Count()],
        verbose=0,
    )
    assert batches == [0, 1, 0, 1]
    assert "val_image_loss" in history.history


@pytest.mark.parametrize(
    "argument, value",
    [("class_weight", {0: 1.0}), ("sample_weight", np.ones(32)), ("y", np.zeros(32))],
)
def test_arguments_that_mean_nothing_here_are_refused_by_name(argument, value):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3)))
    trainer.compile()
    with pytest.raises(ValueError, match=f"`{argument}`"):
        trainer.fit(_images(), verbose=0, **{argument: value})
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        trainer.fit(_images(), steps_per_epoch=0, verbose=0)


def test_a_functional_chain_pair_trains():
    images = keras.Input((16, 16, 3))
    t_1 = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(images)
    t_2 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(t_1)
    encoder = keras.Model(images, t_2)
    code = keras.Input((4, 4, 8))
    r_1 = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(code)
    r_0 = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid")(r_1)
    decoder = keras.Model(code, r_0)
    with pytest.warns(UserWarning, match="Encoder level 1 ends in a ReLU"):  # greedy loses there
        trainer = RecursiveTrainer(encoder, decoder)
    assert trainer.autoencoder.shapes == [(16, 16, 3), (8, 8, 4), (4, 4, 8)]
    trainer.compile()
    history = trainer.fit(_images(), epochs=1, batch_size=8, verbose=0)
    assert history.history["stage"] == [1, 2]


def test_branching_and_subclassed_models_are_refused_saying_how_to_give_levels():
    images = keras.Input((16, 16, 3))
    a = layers.Conv2D(4, 3, padding="same")(images)
    b = layers.Conv2D(4, 3, padding="same")(images)
    branching = keras.Model(images, layers.Add()([a, b]))
    with pytest.raises(TypeError, match="single chain.*list of blocks"):
        RecursiveTrainer(branching, [layers.Conv2D(3, 3, padding="same")])

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="Subclassed.*list"):
        RecursiveTrainer(Subclassed(), [layers.Conv2D(3, 3, padding="same")])


def test_gerons_dense_stacked_autoencoder_trains_as_written_in_two_stages():
    encoder = keras.Sequential(
        [
            layers.Flatten(),
            layers.Dense(100, activation="selu"),
            layers.Dense(30, activation="selu"),
        ]
    )
    decoder = keras.Sequential(
        [
            layers.Dense(100, activation="selu"),
            layers.Dense(64, activation="sigmoid"),
            layers.Reshape((8, 8)),
        ]
    )
    trainer = RecursiveTrainer(encoder, decoder, input_shape=(8, 8))
    assert trainer.depth == 2
    assert trainer.autoencoder.shapes == [(8, 8), (100,), (30,)]
    trainer.compile()
    x = np.random.default_rng(0).random((32, 8, 8), dtype="float32")
    history = trainer.fit(x, epochs=2, batch_size=8, verbose=0)
    assert history.history["stage"] == [1, 1, 2, 2]
    assert history.history["loss"][1] < history.history["loss"][0]


def test_a_pair_with_no_weights_at_all_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"Encoder level blocks \['flat'\] have no weights"):
        RecursiveTrainer(
            [layers.Flatten(name="flat")], [layers.Reshape((4, 4), name="back")], input_shape=(4, 4)
        )


@pytest.mark.parametrize(
    "data, argument, message",
    [
        (
            (_images() * 255).astype("uint8"),
            "x",
            r"`x`.*dtype uint8 with values in \[0, 25[0-9]\].*x / 255",
        ),
        (_images() * 255, "x", r"`x`.*sigmoid.*values in \[0[.0-9]*, 25[0-9.]*\]"),
        (_images() * 2 - 1, "validation_data", r"`validation_data`.*\[-1, 1\]"),
    ],
)
def test_integer_and_out_of_range_images_are_refused_and_left_as_they_were(data, argument, message):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(16, 16, 3)))
    trainer.compile()
    before = data.copy()
    arguments = {"x": _images(), "validation_data": None, argument: data}
    with pytest.raises(ValueError, match=message):
        trainer.fit(arguments["x"], validation_data=arguments["validation_data"], verbose=0)
    np.testing.assert_array_equal(data, before)


def test_greedy_training_of_levels_with_dropout_warns_naming_them():
    with pytest.warns(
        UserWarning, match=r"encoder level 1, encoder level 2, decoder level 2 "
    ) as seen:
        RecursiveTrainer(*_users_conv_pair())
    assert seen[0].filename == __file__  # it points at the user's line
    for schedule in ("end_to_end", "joint"):  # only greedy stages train around it badly
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            RecursiveTrainer(*_users_conv_pair(), schedule=schedule)
    with warnings.catch_warnings():  # the library's stack: no Dropout (and 128x128: not small)
        warnings.simplefilter("error")
        RecursiveTrainer(MirroredConvStack(filters=(2, 2), input_shape=(128, 128, 1)))
