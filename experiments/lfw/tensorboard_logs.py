"""`--tensorboard DIR`: one TensorBoard run per configuration, `DIR/<name>`."""

import importlib.util
from pathlib import Path

import keras

from keras_recursive_ae import ReconstructionLogger


def prepare_tensorboard_dir(tensorboard_dir):
    """Creates the `--tensorboard` folder, or says clearly why it cannot.

    Args:
        tensorboard_dir: A path, or `None` (no TensorBoard logs).

    Returns:
        The folder as a `pathlib.Path`, or `None`.

    Raises:
        ImportError: if the `tensorboard` package is not installed.
        ValueError: if the folder cannot be created (the message names
            `--tensorboard`).
    """
    if tensorboard_dir is None:
        return None
    if importlib.util.find_spec("tensorboard") is None:
        raise ImportError(
            "--tensorboard (tensorboard_dir) needs the `tensorboard` package: "
            "pip install tensorboard"
        )
    path = Path(tensorboard_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"--tensorboard (tensorboard_dir): cannot create the folder {str(path)!r}: "
            f"{error.strerror or error}"
        ) from error
    return path


def tensorboard_callbacks(log_dir, images, autoencoder):
    """The callbacks that write one configuration's TensorBoard run.

    Args:
        log_dir: The run's folder, e.g. `<--tensorboard>/<configuration name>`.
        images: The fixed held-out images whose reconstructions are shown.
        autoencoder: The configuration's autoencoder as the trainer sees
            its levels (`trainer.autoencoder`), for each greedy stage's own
            view.

    Returns:
        `[keras.callbacks.TensorBoard(log_dir), ReconstructionLogger(...)]`:
        Keras' own curves (`epoch_loss`, `epoch_stage`, ...) and the
        reconstructions, both at the epochs of the whole run.
    """
    log_dir = str(log_dir)
    return [
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        ReconstructionLogger(images, log_dir, autoencoder=autoencoder, max_images=len(images)),
    ]
