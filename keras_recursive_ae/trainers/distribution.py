"""Training the stages under the user's distribution, on every backend.

Recursive training compiles one new model per stage, long after the user
built the autoencoder. Keras ties a model to the distribution in effect when
it is created and compiled (`tf.distribute` strategies on TensorFlow,
`keras.distribution` on JAX), so every stage must be created, compiled and
trained in the scope the autoencoder's weights were created in. The trainer
captures that distribution when it is created (`capture`), and `stage_scope`
re-enters it for every stage, refusing configurations that would otherwise
train on one device, fail deep inside Keras, or hang.

"""

import contextlib

import keras

from keras_recursive_ae.utils.backend import imported_tensorflow


def capture():
    """The distribution in effect now, or `None`.

    On TensorFlow, the `tf.distribute.Strategy` whose scope is open; on JAX,
    `keras.distribution.distribution()`; on other backends, `None`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = imported_tensorflow()
        return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if backend == "jax":
        return keras.distribution.distribution()
    return None


def _describe(distribution):
    return type(distribution).__name__


@contextlib.contextmanager
def stage_scope(captured):
    """The scope every stage is built, compiled and trained in.

    Args:
        captured: what `capture()` returned when the trainer was created.

    Raises:
        ValueError: if a different distribution is in effect now than when
            the trainer was created (e.g. a strategy created after the
            trainer, whose scope is open around `fit`).
    """
    current = capture()
    if current is not None and current is not captured:
        if captured is None:
            raise ValueError(
                f"`fit()` runs under {_describe(current)}, but the "
                "RecursiveTrainer was created outside of it, so its stages "
                "would not be distributed. Create the model and the trainer "
                "inside the distribution's scope (`with strategy.scope():` on "
                "TensorFlow, `keras.distribution.set_distribution(...)` or "
                "`with distribution.scope():` on JAX)."
            )
        raise ValueError(
            f"`fit()` runs under {_describe(current)}, but the "
            f"RecursiveTrainer was created under another distribution, "
            f"{_describe(captured)}. Train under the distribution the model "
            "and the trainer were created in."
        )
    if captured is None:
        yield
    else:
        with captured.scope():
            yield


def check_weights(captured, model):
    """Raises if `model`'s weights do not belong to the captured distribution.

    A model built before its strategy (or a trainer created outside the
    strategy that owns the model) would otherwise train on one device, or
    fail inside Keras with a message about devices.
    """
    backend = keras.backend.backend()
    for variable in model.weights:
        value = variable.value
        if backend == "tensorflow":
            tf = imported_tensorflow()
            if captured is None:
                owned = not isinstance(value, tf.distribute.DistributedValues)
            else:
                owned = captured.extended.variable_created_in_scope(value)
        elif backend == "jax":
            devices = set(value.sharding.device_set)
            if captured is None:
                owned = len(devices) == 1
            else:
                owned = devices == set(captured.device_mesh.devices.flatten().tolist())
        else:
            return
        if not owned:
            if captured is None:
                problem = (
                    "was created outside any distribution scope, but the "
                    "model's weights were created inside one"
                )
            else:
                problem = (
                    f"was created under {_describe(captured)}, but the "
                    "model's weights were created outside its scope"
                )
            raise ValueError(
                f"The RecursiveTrainer {problem} (first: '{variable.path}'). "
                "Build the model (e.g. the MirroredConvStack, or your encoder "
                "and decoder) and create the trainer in the same distribution "
                "scope."
            )


def multi_worker_logs(logs):
    """Makes a stage's logs reducible under `MultiWorkerMirroredStrategy`.

    With several workers, Keras 3's TensorFlow trainer averages each
    replica's logs with `strategy.reduce("MEAN", value, axis=0)`, which fails
    on the scalar losses and metrics every model returns ("Invalid reduction
    dimension 0 for input with 0 dimensions"; keras-team/keras#20585), so
    no Keras model can `fit` under that strategy. Giving every scalar a
    leading axis of length 1 makes the reduction return the scalar mean.
    Anywhere else the logs are returned unchanged.
    """
    if keras.backend.backend() != "tensorflow" or not _multi_worker(
        imported_tensorflow().distribute.get_strategy()
    ):
        return logs
    return {
        name: keras.ops.reshape(value, (1,)) if len(keras.ops.shape(value)) == 0 else value
        for name, value in logs.items()
    }


def _multi_worker(strategy):
    tf = imported_tensorflow()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker")) > 1
