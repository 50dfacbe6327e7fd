"""Resumable training: SIGKILL in the middle of stage 2, then the same call again."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

TRAINING_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import keras
    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    checkpoint_dir, output, kill_marker = sys.argv[1], sys.argv[2], sys.argv[3]
    keras.utils.set_random_seed(42)
    images = np.random.default_rng(0).random((48, 16, 16, 3), dtype="float32")
    stack = MirroredConvStack(filters=(4, 8, 8), input_shape=(16, 16, 3),
                              normalization="shared", variational=True, latent_dim=4)

    class WaitForKill(keras.callbacks.Callback):
        # Stops in the middle of stage 2's third epoch (epoch 6 of the run)
        # and waits for SIGKILL.
        epoch = None
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if kill_marker != "-" and self.epoch == 6 and batch == 2:
                open(kill_marker, "w").close()
                time.sleep(600)

    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer="adam", loss="mse")
    history = trainer.fit(images, epochs=4, batch_size=8, fine_tune_epochs=1,
                          validation_data=images[:8], checkpoint_dir=checkpoint_dir,
                          callbacks=[WaitForKill()], verbose=0)
    np.savez(output, *trainer.model.get_weights(), stages=np.array(
        [str(s) for s in history.history["stage"]]), loss=np.array(history.history["loss"]))
    """
)


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_a_run_killed_in_stage_2_resumes_there_and_ends_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT)

    _finish(_run(script, tmp_path / "straight", tmp_path / "straight.npz", "-"))

    marker = tmp_path / "killed_here"
    process = _run(script, tmp_path / "resumed", tmp_path / "resumed.npz", marker)
    deadline = time.monotonic() + 600
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = (tmp_path / "resumed" / "checkpoint.json").read_text()
    assert '"epoch": 6' in state  # stage 1's 4 epochs and 2 of stage 2's done

    _finish(_run(script, tmp_path / "resumed", tmp_path / "resumed.npz", "-"))
    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    assert list(resumed["stages"]) == ["1"] * 4 + ["2"] * 4 + ["3"] * 4 + ["4"]
    np.testing.assert_array_equal(straight["loss"], resumed["loss"])
    weights = [k for k in straight.files if k.startswith("arr_")]
    assert len(weights) > 10
    for key in weights:
        np.testing.assert_array_equal(straight[key], resumed[key], err_msg=key)
    assert len(list((tmp_path / "resumed").glob("*.weights.h5"))) == 1  # the model's, at the end


def test_a_finished_run_is_not_trained_again(tmp_path):
    stack = MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1))
    trainer = RecursiveTrainer(stack)
    trainer.compile()
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    first = trainer.fit(x, epochs=2, batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    weights = stack.get_weights()
    stack.set_weights([w * 0 for w in weights])  # restored from the checkpoint
    again = trainer.fit(x, epochs=2, batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    assert again.history == first.history
    for a, b in zip(stack.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_a_resumed_joint_run_keeps_the_level_weights_of_its_start(tmp_path):
    x = np.random.default_rng(0).random((32, 16, 16, 3), dtype="float32")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    def train(directory, callbacks=()):
        keras.utils.set_random_seed(1)
        stack = MirroredConvStack(filters=(4, 8, 8), input_shape=(16, 16, 3))
        trainer = RecursiveTrainer(stack, schedule="joint")
        trainer.compile(optimizer=keras.optimizers.SGD(0.5))
        history = trainer.fit(
            x,
            epochs=4,
            batch_size=8,
            checkpoint_dir=directory,
            callbacks=list(callbacks),
            verbose=0,
        )
        return stack.get_weights(), history.history["loss"]

    straight = train(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", [Interrupt()])
    # Weights fixed from the resumed model rather than restored would give
    # another loss from epoch 3 on.
    resumed = train(tmp_path / "resumed")
    np.testing.assert_array_equal(straight[1], resumed[1])
    for a, b in zip(straight[0], resumed[0]):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_another_model_is_refused_and_nothing_is_loaded(tmp_path):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1)))
    trainer.compile()
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    trainer.fit(x, epochs=1, batch_size=4, checkpoint_dir=tmp_path, verbose=0)

    other = MirroredConvStack(filters=(4, 6), input_shape=(8, 8, 1))
    before = other.get_weights()
    trainer = RecursiveTrainer(other)
    trainer.compile()
    with pytest.raises(ValueError, match="different run.*`variables` differs"):
        trainer.fit(x, epochs=1, batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)

    same_model_other_epochs = RecursiveTrainer(
        MirroredConvStack(filters=(4, 4), input_shape=(8, 8, 1))
    )
    same_model_other_epochs.compile()
    with pytest.raises(ValueError, match="`phases` differs"):
        same_model_other_epochs.fit(x, epochs=3, batch_size=4, checkpoint_dir=tmp_path, verbose=0)


def test_an_unreadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.json").write_text("{not json")
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4,), input_shape=(8, 8, 1)))
    trainer.compile()
    with pytest.raises(ValueError, match="Cannot read the checkpoint"):
        trainer.fit(np.random.rand(4, 8, 8, 1), checkpoint_dir=tmp_path, verbose=0)
