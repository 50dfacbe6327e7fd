"""Greedy that does not lose silently: the trainer warns, before training, about users' pairs
measured to lose under `schedule="greedy"` (docs/schedules.md, "Users' pairs: when greedy
loses, and what the library says"), and not about the pairs that do not. Below 128x128 every
greedy pair also gets the small-input warning (a cause of its own), so the tests of the other
causes read the messages, not their number."""

import warnings

import keras
import numpy as np
import pytest

from keras_recursive_ae import GreedyTrainingWarning, MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.models.levels import output_activation, small_input

layers = keras.layers


def _denoising_pair(noise=True, activation="relu"):
    """keras-io's denoising conv pair at 16x16x1, GaussianNoise first in its encoder."""
    encoder = keras.Sequential(
        [layers.GaussianNoise(0.2)] * noise
        + [
            layers.Conv2D(8, 3, activation=activation, padding="same"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(8, 3, activation=activation, padding="same"),
            layers.MaxPooling2D(2, padding="same"),
        ]
    )
    decoder = keras.Sequential(
        [
            layers.Conv2DTranspose(8, 3, strides=2, activation=activation, padding="same"),
            keras.Sequential(
                [
                    layers.Conv2DTranspose(8, 3, strides=2, activation=activation, padding="same"),
                    layers.Conv2D(1, 3, activation="sigmoid", padding="same"),
                ]
            ),
        ]
    )
    return encoder, decoder


def _anomaly_detector(activation="relu"):
    """TensorFlow's dense anomaly detector: 32-16-8 and back, on 64 values."""
    encoder = keras.Sequential([layers.Dense(n, activation=activation) for n in (32, 16, 8)])
    decoder = keras.Sequential(
        [
            layers.Dense(16, activation=activation),
            layers.Dense(32, activation=activation),
            layers.Dense(64, activation="sigmoid"),
        ]
    )
    return encoder, decoder


def _no_warning(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return RecursiveTrainer(*args, **kwargs)


def _messages(*args, **kwargs):
    """The trainer's warnings, by their text (every one a GreedyTrainingWarning at this line)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        RecursiveTrainer(*args, **kwargs)
    assert all(w.category is GreedyTrainingWarning and w.filename == __file__ for w in seen)
    return [str(w.message) for w in seen]


def _only_small_input(*args, **kwargs):
    """Only the small-input warning: none about noise or ReLU levels."""
    (message,) = _messages(*args, **kwargs)
    assert message.startswith("The input is ")


SMALL = "On inputs smaller than a 128x128 image"


def test_noise_in_the_encoder_warns_naming_the_level_and_the_fixes():
    with pytest.warns(UserWarning) as seen:
        RecursiveTrainer(*_denoising_pair(), input_shape=(16, 16, 1))
    # The noise, the ReLU level of keras-io's pair, the 16x16 input: one warning each.
    message, relu, small = [str(w.message) for w in seen]
    assert message.startswith("encoder level 1 contain GaussianNoise.")
    assert relu.startswith("Encoder level 1 ends in a ReLU, so T_1,")
    assert small.startswith("The input is 16x16 (input_shape=(16, 16, 1)).")
    for other in (message, relu):  # each cause is said once, in its own warning
        assert SMALL not in other and "128x128" not in other
    for fix in ("schedule='end_to_end'", "fine_tune_epochs=N", "GaussianNoise(0.2)"):
        assert fix in message
    assert "docs/schedules.md, 'Users' pairs" in message
    assert all(w.filename == __file__ for w in seen)  # the user's line


def test_relu_inner_levels_warn_naming_them_and_the_fixes():
    with pytest.warns(UserWarning) as seen:
        RecursiveTrainer(*_anomaly_detector(), input_shape=(64,))
    message, small = [str(w.message) for w in seen]
    assert message.startswith("Encoder levels 1, 2 end in a ReLU, so T_1, T_2,")
    assert small.startswith("The input is a vector of 64 values (input_shape=(64,)).")
    for fix in ("activation='selu'", "fine_tune_epochs=N", "schedule='end_to_end'"):
        assert fix in message


def test_the_warnings_come_once_at_fit_when_the_shape_is_known_only_then():
    trainer = _no_warning(*_anomaly_detector())  # no input shape: nothing built yet
    trainer.compile(loss="mae")
    x = np.random.default_rng(0).random((16, 64), dtype="float32")

    def ours(seen):  # (Keras itself may warn during fit on some backends: only ours count.)
        return [w for w in seen if "end in a ReLU" in str(w.message) or SMALL in str(w.message)]

    with pytest.warns(UserWarning, match="end in a ReLU") as seen:
        trainer.fit(x, epochs=1, batch_size=8, verbose=0)
    assert [w.filename for w in ours(seen)] == [__file__] * 2
    assert "input_shape=(64,)" in str(ours(seen)[1].message)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        trainer.fit(x, epochs=1, batch_size=8, verbose=0)  # once per trainer
    assert not ours(again)


def test_the_fixes_and_the_other_schedules_do_not_warn():
    # The ReLU and noise fixes silence their warnings; these inputs are small, so the
    # small-input warning stays (end to end is its fix).
    _only_small_input(*_anomaly_detector("selu"), input_shape=(64,))
    _only_small_input(*_anomaly_detector("elu"), input_shape=(64,))
    _only_small_input(
        *_denoising_pair(noise=False, activation="selu"),
        input_shape=(16, 16, 1),
        corruption=layers.GaussianNoise(0.2),
    )
    for schedule in ("end_to_end", "joint"):
        _no_warning(*_anomaly_detector(), input_shape=(64,), schedule=schedule)
        _no_warning(*_denoising_pair(), input_shape=(16, 16, 1), schedule=schedule)
        _no_warning(MirroredConvStack(filters=(4, 8), input_shape=(32, 32, 3)), schedule=schedule)


def test_the_librarys_own_stacks_warn_only_about_small_inputs():
    _only_small_input(MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 1)))
    _only_small_input(MirroredConvStack.paper(input_shape=(16, 16, 3)))
    _only_small_input(
        MirroredConvStack(
            filters=(4, 8, 8), input_shape=(16, 16, 3), variational=True, latent_dim=4
        )
    )
    # A ReLU stack with batch norm after the activation: its tensors are not sparse.
    _only_small_input(
        MirroredConvStack(
            filters=(4, 8), input_shape=(16, 16, 1), activation="relu", normalization="batch"
        )
    )
    # At 128x128, where greedy won, nothing.
    _no_warning(MirroredConvStack(filters=(2, 2), input_shape=(128, 128, 3)))


def test_small_inputs_warn_naming_the_shape_the_numbers_and_the_fixes():
    (message,) = _messages(MirroredConvStack(filters=(4, 8), input_shape=(32, 32, 3)))
    assert message.startswith("The input is 32x32 (input_shape=(32, 32, 3)). " + SMALL)
    for number in ("299 against 147", "29.3 against 17.9", "265 against 729"):
        assert number in message
    for fix in ("schedule='end_to_end'", "fine_tune_epochs=N", "'Which schedule to pick'"):
        assert fix in message
    # A flat dense pair (no ReLU: only this warning), and a sequence.
    dense = keras.Sequential([layers.Dense(8, activation="selu"), layers.Dense(4)])
    back = keras.Sequential([layers.Dense(8, activation="selu"), layers.Dense(32)])
    (message,) = _messages(dense, back, input_shape=(32,))
    assert message.startswith("The input is a vector of 32 values (input_shape=(32,)). ")
    assert small_input((100, 8)).startswith("an array of 2 axes, not a (height, width,")
    # Height x width, not a side: 256x64 is as many pixels as 128x128; 128x127 is fewer.
    assert small_input((256, 64, 1)) is None
    assert small_input((128, 127, 3)) == "128x127"
    assert small_input((8, 128, 128, 1)) is None  # a volume: its last two spatial axes


def test_small_inputs_read_channels_first_images_by_the_data_format():
    before = keras.config.image_data_format()
    try:
        keras.config.set_image_data_format("channels_first")
        assert small_input((3, 128, 128)) is None
        assert small_input((3, 64, 64)) == "64x64"
        assert small_input((128, 128, 3)) == "128x3"
    finally:
        keras.config.set_image_data_format(before)
    assert small_input((128, 128, 3)) is None
    assert small_input((3, 128, 128)) == "3x128"


@pytest.mark.parametrize(
    "block, expected",
    [
        (layers.Dense(4, activation="relu"), "relu"),
        ([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D()], "relu"),
        ([layers.Conv2D(4, 3), layers.ReLU(), layers.Dropout(0.1)], "relu"),
        ([layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization()], None),
        ([layers.Conv2D(4, 3, activation="relu"), layers.Conv2D(4, 1)], None),
        ([layers.Conv2D(4, 3), layers.LeakyReLU()], "leaky_relu"),
        (keras.Sequential([layers.Dense(4), layers.Activation("selu")]), "selu"),
    ],
)
def test_output_activation_reads_back_through_layers_that_keep_zeros(block, expected):
    assert output_activation(block) == expected


def test_greedy_warnings_have_their_own_category_to_silence_them():
    with pytest.warns(GreedyTrainingWarning, match=SMALL):
        RecursiveTrainer(MirroredConvStack(filters=(4,), input_shape=(16, 16, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=GreedyTrainingWarning)
        RecursiveTrainer(*_anomaly_detector(), input_shape=(64,))


def _fit_warnings(trainer, loss, epochs=1):
    """The messages of the GreedyTrainingWarnings `fit` raises with `loss`."""
    trainer.compile(loss=loss)
    x = np.random.default_rng(0).random((8, 16, 16, 1), dtype="float32")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer.fit(x, epochs=epochs, batch_size=8, verbose=0)
    assert all(w.filename == __file__ for w in seen if w.category is GreedyTrainingWarning)
    return [str(w.message) for w in seen if w.category is GreedyTrainingWarning]


def _bce_messages(messages):
    return [m for m in messages if "expects targets in [0, 1]" in m]


def test_binary_crossentropy_on_inner_tensors_outside_0_1_warns_at_fit():
    # keras-io's denoising pair compiles with binary_crossentropy: its inner
    # stage's target T_1 comes out of a ReLU, unbounded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = RecursiveTrainer(*_denoising_pair(noise=False), input_shape=(16, 16, 1))
    for loss in ("binary_crossentropy", keras.losses.BinaryCrossentropy()):
        (message,) = _bce_messages(_fit_warnings(trainer, loss))
        assert message.startswith("loss='binary_crossentropy' expects targets in [0, 1], ")
        assert "T_1, the outputs of encoder levels 1 (relu)" in message
        for fix in ("loss='mse'", "schedule='end_to_end'", "sigmoid"):
            assert fix in message
    assert not _bce_messages(_fit_warnings(trainer, "mse"))
    # No inner stage trains: only the image is a target.
    assert not _bce_messages(_fit_warnings(trainer, "binary_crossentropy", epochs=[1, 0]))


def test_binary_crossentropy_is_fine_on_sigmoid_levels_and_end_to_end():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigmoid = RecursiveTrainer(
            *_denoising_pair(noise=False, activation="sigmoid"), input_shape=(16, 16, 1)
        )
        end_to_end = RecursiveTrainer(
            *_denoising_pair(noise=False), input_shape=(16, 16, 1), schedule="end_to_end"
        )
    assert not _bce_messages(_fit_warnings(sigmoid, "binary_crossentropy"))
    assert not _bce_messages(_fit_warnings(end_to_end, "binary_crossentropy"))
