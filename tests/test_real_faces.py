"""Recursive training on real LFW faces from ../shared/data/lfw."""

import keras
import pytest

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
from keras_recursive_ae.datasets.lfw import load_lfw
from keras_recursive_ae.metrics import sum_squared_error


@pytest.mark.slow
@pytest.mark.parametrize("normalization", [None, "shared"])
def test_greedy_training_lowers_the_validation_error_of_the_assembled_model(lfw_dir, normalization):
    faces = load_lfw(lfw_dir, image_size=32, max_images=800, batch_size=16, seed=0)
    validation = faces.numpy("validation")
    assert len(validation) >= 20
    stack = MirroredConvStack(
        base_filters=8,
        depth=3,
        kernel_sizes=[5, 3, 3],
        input_shape=(32, 32, 3),
        normalization=normalization,
    )
    before = sum_squared_error(validation, stack.predict(validation, verbose=0)).mean()
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    history = trainer.fit(faces.train, epochs=6, validation_data=validation, verbose=0)
    after = sum_squared_error(validation, trainer.model.predict(validation, verbose=0)).mean()
    assert history.history["stage"] == [1] * 6 + [2] * 6 + [3] * 6
    assert after < 0.5 * before, (before, after, history.history["val_loss"])
