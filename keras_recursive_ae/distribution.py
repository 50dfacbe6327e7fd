"""Training the stages under the user's distribution, on every backend.

Recursive training compiles one new model per stage, long after the user
built the autoencoder. Keras ties a model to the distribution in effect when
it is created and compiled (`tf.distribute` strategies on TensorFlow,
`keras.distribution` on JAX), so every stage must be created, compiled and
trained in the scope the autoencoder's weights were created in. The trainer
captures that distribution when it is created (`capture`), and `stage_scope`
re-enters it for every stage, refusing configurations that would otherwise
train on one device, fail deep inside Keras, or hang.

`wait_for_workers` guards the one step Keras does not run: the rendezvous of
a `tf.distribute.MultiWorkerMirroredStrategy`, which waits forever for a
worker that never comes.
"""

import contextlib
import json
import os
import socket
import sys
import threading
import time

import keras


def capture():
    """The distribution in effect now, or `None`.

    On TensorFlow, the `tf.distribute.Strategy` whose scope is open; on JAX,
    `keras.distribution.distribution()`; on other backends, `None`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = sys.modules["tensorflow"]
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
            tf = sys.modules["tensorflow"]
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


def wait_for_workers(timeout=300, poll_interval=0.2, tf_config=None):
    """Waits until every other worker in `TF_CONFIG` answers on its port.

    `tf.distribute.MultiWorkerMirroredStrategy()` blocks until all workers of
    the cluster have registered, with no time limit, and ignores SIGTERM
    while it waits: a worker whose peer never starts (a wrong address or
    port, a crashed process) hangs for good. Call this first, on every
    worker, to get an error instead. While it waits it listens on this
    worker's own port (released before it returns, for TensorFlow's server),
    so workers that call it at the same time find each other. A worker that
    reaches a peer tells it who it is, so a peer counts as found when either
    side reached the other: the first to see the other may go on and stop
    listening without leaving it waiting.

    Args:
        timeout: seconds to wait for all peers.
        poll_interval: seconds between connection attempts.
        tf_config: the cluster as a JSON string or a dict; defaults to the
            environment variable `TF_CONFIG`, as TensorFlow reads it.

    Returns:
        The addresses of the peers that answered.

    Raises:
        ValueError: if `TF_CONFIG` (or `tf_config`) is missing or malformed.
        TimeoutError: if a peer does not answer within `timeout` seconds;
            the message names the peers that did not.
        OSError: if this worker's own port is already in use.

    Example:

    ```python
    import tensorflow as tf
    from keras_recursive_ae.distribution import wait_for_workers

    # TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
    #             "task": {"type": "worker", "index": 0}}'
    wait_for_workers(timeout=120)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ```
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG")
    own, peers = _cluster_addresses(tf_config)
    _, port = _split_address(own)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as error:
        listener.close()
        raise OSError(
            f"This worker's address {own!r} (from TF_CONFIG) cannot be "
            f"listened on: port {port} is in use or not allowed ({error})."
        ) from error
    listener.listen(16)
    listener.settimeout(poll_interval)
    stop = threading.Event()
    heard_from = set()

    def answer():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(max(poll_interval, 1.0))
                try:
                    heard_from.add(connection.recv(1024).decode(errors="replace"))
                except OSError:
                    pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    waiting = list(peers)
    try:
        while waiting:
            waiting = [peer for peer in waiting if peer not in heard_from]
            for peer in list(waiting):
                try:
                    connection = socket.create_connection(
                        _split_address(peer), timeout=poll_interval
                    )
                except OSError:
                    continue
                waiting.remove(peer)
                with connection:
                    try:
                        connection.sendall(own.encode())
                    except OSError:
                        pass  # it was listening; it may have just stopped
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Worker {own!r} could not reach {waiting} within "
                    f"{timeout} s. Start every worker with the same TF_CONFIG "
                    f"cluster and check that these addresses are reachable "
                    f"from this machine. Received: TF_CONFIG={tf_config}"
                )
            if waiting:
                time.sleep(poll_interval)
    finally:
        stop.set()
        thread.join()
        listener.close()
    return list(peers)


def _cluster_addresses(tf_config):
    try:
        config = json.loads(tf_config) if isinstance(tf_config, str) else tf_config
        cluster, task = config["cluster"], config["task"]
        own = cluster[task["type"]][int(task["index"])]
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise ValueError(
            "Expected the environment variable TF_CONFIG to hold a JSON "
            'object such as {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={tf_config!r}"
        ) from error
    peers = [
        address
        for job in ("chief", "worker")
        for address in cluster.get(job, [])
        if address != own
    ]
    return own, peers


def _split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "localhost", int(port)


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
        sys.modules["tensorflow"].distribute.get_strategy()
    ):
        return logs
    return {
        name: keras.ops.reshape(value, (1,)) if len(keras.ops.shape(value)) == 0 else value
        for name, value in logs.items()
    }


def _multi_worker(strategy):
    tf = sys.modules["tensorflow"]
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker")) > 1
