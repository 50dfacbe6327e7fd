"""Greedy that does not lose silently: the trainer warns, before training, about users' pairs
measured to lose under `schedule="greedy"` (docs/schedules.md, "Users' pairs: when greedy
loses, and what the library says"), and not about the pairs that do not."""

import warnings

import keras
import numpy as np
import pytest

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.models.levels import output_activation

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


def test_noise_in_the_encoder_warns_naming_the_level_and_the_fixes():
    with pytest.warns(UserWarning) as seen:
        RecursiveTrainer(*_denoising_pair(), input_shape=(16, 16, 1))
    # The noise, then the ReLU level of keras-io's pair: one warning each.
    message, relu = [str(w.message) for w in seen]
    assert message.startswith("encoder level 1 contain GaussianNoise.")
    assert relu.startswith("Encoder level 1 ends in a ReLU, so T_1,")
    for fix in ("schedule='end_to_end'", "fine_tune_epochs=N", "GaussianNoise(0.2)"):
        assert fix in message
    assert "docs/schedules.md, 'Users' pairs" in message
    assert all(w.filename == __file__ for w in seen)  # the user's line


def test_relu_inner_levels_warn_naming_them_and_the_fixes():
    with pytest.warns(UserWarning) as seen:
        RecursiveTrainer(*_anomaly_detector(), input_shape=(64,))
    (message,) = [str(w.message) for w in seen]
    assert message.startswith("Encoder levels 1, 2 end in a ReLU, so T_1, T_2,")
    for fix in ("activation='selu'", "fine_tune_epochs=N", "schedule='end_to_end'"):
        assert fix in message


def test_the_warning_comes_once_at_fit_when_the_shape_is_known_only_then():
    trainer = _no_warning(*_anomaly_detector())  # no input shape: nothing built yet
    trainer.compile(loss="mae")
    x = np.random.default_rng(0).random((16, 64), dtype="float32")
    with pytest.warns(UserWarning, match="end in a ReLU") as seen:
        trainer.fit(x, epochs=1, batch_size=8, verbose=0)
    # (Keras itself may warn during fit on some backends: only ours count.)
    ours = [w for w in seen if "end in a ReLU" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        trainer.fit(x, epochs=1, batch_size=8, verbose=0)  # once per trainer
    assert not [w for w in again if "end in a ReLU" in str(w.message)]


def test_the_fixes_and_the_other_schedules_do_not_warn():
    _no_warning(*_anomaly_detector("selu"), input_shape=(64,))
    _no_warning(*_anomaly_detector("elu"), input_shape=(64,))
    _no_warning(
        *_denoising_pair(noise=False, activation="selu"),
        input_shape=(16, 16, 1),
        corruption=layers.GaussianNoise(0.2),
    )
    for schedule in ("end_to_end", "joint"):
        _no_warning(*_anomaly_detector(), input_shape=(64,), schedule=schedule)
        _no_warning(*_denoising_pair(), input_shape=(16, 16, 1), schedule=schedule)


def test_the_librarys_own_stacks_do_not_warn():
    _no_warning(MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 1)))
    _no_warning(MirroredConvStack.paper(input_shape=(16, 16, 3)))
    _no_warning(
        MirroredConvStack(
            filters=(4, 8, 8), input_shape=(16, 16, 3), variational=True, latent_dim=4
        )
    )
    # A ReLU stack with batch norm after the activation: its tensors are not sparse.
    _no_warning(
        MirroredConvStack(
            filters=(4, 8), input_shape=(16, 16, 1), activation="relu", normalization="batch"
        )
    )


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
