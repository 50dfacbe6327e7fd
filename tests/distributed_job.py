"""Greedy training of tiny autoencoders under a distribution, for the tests.

Run by tests/trainers/test_distributed.py in fresh processes (device counts and
TF_CONFIG must be set before the backend starts):

    python tests/distributed_job.py MODE OUTPUT.npz

MODE is one of
- `tf_single`: TensorFlow, one device, no strategy (the reference);
- `tf_mirrored`: TensorFlow, `MirroredStrategy` on two logical CPUs;
- `tf_multi_worker`: TensorFlow, `MultiWorkerMirroredStrategy`, one worker
  of the cluster in TF_CONFIG (one CPU replica per worker);
- `jax_single`: JAX on one of two host devices, no distribution;
- `jax_data_parallel`: JAX, `keras.distribution.DataParallel` on two host
  devices.

For every configuration in CONFIGS it trains the same model on the same
data (same seed, no shuffling) and saves its weights, the history and, for
every moving statistic, its value on every local replica. Modes that have a
distribution also try the bad configurations and save the error messages.
"""

import contextlib
import json
import os
import sys

MODE, OUTPUT = sys.argv[1], sys.argv[2]
BACKEND = MODE.split("_")[0]
BACKEND = {"tf": "tensorflow", "jax": "jax"}[BACKEND]
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import numpy as np  # noqa: E402

if MODE == "tf_mirrored":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
from workers import wait_for_workers  # noqa: E402

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer, SharedBatchNorm  # noqa: E402

layers = keras.layers

# name -> (normalization, cache); "shared_sync" is a user's own pair whose
# SharedBatchNorm synchronizes batch statistics across replicas (TF only).
CONFIGS = {
    "none": (None, "memory"),
    "shared": ("shared", "memory"),
    "shared_off": ("shared", "off"),
}
if BACKEND == "tensorflow":
    CONFIGS["shared_sync"] = ("shared_sync", "memory")

IMAGES = np.random.default_rng(0).random((32, 8, 8, 2), dtype="float32")


def user_pair_with_synchronized_norm():
    norm = SharedBatchNorm(synchronized=True, name="norm_1")
    encoder = [
        keras.Sequential(
            [layers.Conv2D(4, 3, strides=2, padding="same", activation="selu"), norm],
            name="e1",
        ),
        layers.Conv2D(6, 3, strides=2, padding="same", activation="selu", name="e2"),
    ]
    code = keras.Input((2, 2, 6))
    rebuilt = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="selu")(code)
    decoder = [
        keras.Model(code, norm(rebuilt, site="decoder"), name="d2"),
        layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="sigmoid", name="d1"),
    ]
    return encoder, decoder


def make_trainer(normalization, cache):
    keras.utils.set_random_seed(1)
    if normalization == "shared_sync":
        encoder, decoder = user_pair_with_synchronized_norm()
        return RecursiveTrainer(encoder, decoder, input_shape=(8, 8, 2), cache=cache)
    stack = MirroredConvStack(
        filters=(4, 6), input_shape=(8, 8, 2), normalization=normalization, activation="selu"
    )
    return RecursiveTrainer(stack, cache=cache)


def train(trainer):
    trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    return trainer.fit(IMAGES, epochs=2, batch_size=8, shuffle=False, verbose=0)


def replica_values(variable):
    """The variable's value on every replica (device) of this process."""
    if BACKEND == "tensorflow":
        tf = sys.modules["tensorflow"]
        strategy = tf.distribute.get_strategy()
        values = strategy.experimental_local_results(variable.value)
        return np.stack([np.asarray(v.numpy()) for v in values])
    shards = variable.value.addressable_shards
    return np.stack([np.asarray(shard.data) for shard in shards])


def run_configs(scope, results):
    for name, (normalization, cache) in CONFIGS.items():
        with scope():
            trainer = make_trainer(normalization, cache)
        # Keras style: fit outside the scope; one configuration fits inside it.
        with scope() if name == "shared_off" else contextlib.nullcontext():
            history = train(trainer)
        results[f"{name}/loss"] = np.array(history.history["loss"])
        for i, weight in enumerate(trainer.model.get_weights()):
            results[f"{name}/weight_{i}"] = weight
        for variable in trainer.model.weights:
            if "moving" in variable.path:
                with scope():
                    results[f"{name}/replicas/{variable.path}"] = replica_values(variable)
        results[f"{name}/prediction"] = keras.ops.convert_to_numpy(
            trainer.model.predict(IMAGES[:4], verbose=0)
        )


def error_of(function):
    try:
        function()
    except Exception as error:  # the tests check the type and the message
        return f"{type(error).__name__}: {error}"
    return "no error"


def bad_configurations(scope, enter_late):
    """What happens when the trainer and the distribution do not match."""
    errors = {}

    def distribution_after_trainer():
        trainer = make_trainer(None, "memory")  # no distribution yet
        trainer.compile()
        with enter_late():
            trainer.fit(IMAGES, epochs=1, batch_size=8, verbose=0)

    def model_built_before_distribution():
        keras.utils.set_random_seed(1)
        stack = MirroredConvStack(filters=(4,), input_shape=(8, 8, 2))
        with scope():
            trainer = RecursiveTrainer(stack)
        trainer.compile()
        trainer.fit(IMAGES, epochs=1, batch_size=8, verbose=0)

    def trainer_created_outside_the_model_scope():
        with scope():
            stack = MirroredConvStack(filters=(4,), input_shape=(8, 8, 2))
        trainer = RecursiveTrainer(stack)
        trainer.compile()
        trainer.fit(IMAGES, epochs=1, batch_size=8, verbose=0)

    for name, function in [
        ("distribution_after_trainer", distribution_after_trainer),
        ("model_built_before_distribution", model_built_before_distribution),
        ("trainer_created_outside_the_model_scope", trainer_created_outside_the_model_scope),
    ]:
        errors[name] = error_of(function)
    return errors


def main():
    results, errors = {}, {}
    if MODE in ("tf_single", "jax_single"):
        run_configs(contextlib.nullcontext, results)
    elif MODE == "tf_mirrored":
        tf = sys.modules["tensorflow"]
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        run_configs(strategy.scope, results)
        errors = bad_configurations(
            strategy.scope, lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope()
        )
    elif MODE == "tf_multi_worker":
        wait_for_workers(timeout=float(os.environ.get("WAIT_FOR_WORKERS_TIMEOUT", "120")))
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        assert strategy.num_replicas_in_sync == 2
        run_configs(strategy.scope, results)
    elif MODE == "jax_data_parallel":
        import jax

        assert len(jax.devices()) == 2
        distribution = keras.distribution.DataParallel(devices=jax.devices())
        run_configs(distribution.scope, results)
        errors = bad_configurations(distribution.scope, distribution.scope)
    else:
        raise ValueError(f"Unknown mode {MODE!r}")
    np.savez(OUTPUT, **results)
    with open(OUTPUT + ".errors.json", "w") as file:
        json.dump(errors, file)


if __name__ == "__main__":
    main()
