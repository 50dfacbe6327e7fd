"""`wait_for_workers`: a TCP rendezvous for the multi-worker tests.

It lives here, in the tests (`from workers import wait_for_workers`, as
`trainers/test_distributed.py` and `distributed_job.py` do), not in the library.

`tf.distribute.MultiWorkerMirroredStrategy()` blocks until all workers of
the cluster have registered, with no time limit: a worker whose peer never
starts hangs for good. The tests call this first, on every worker, to get an
error instead.
"""

import json
import os
import socket
import threading
import time


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
    from workers import wait_for_workers  # tests/workers.py, with tests/ on sys.path

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
        address for job in ("chief", "worker") for address in cluster.get(job, []) if address != own
    ]
    return own, peers


def _split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "localhost", int(port)
