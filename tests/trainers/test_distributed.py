"""Recursive training past one device: tf.distribute and JAX DataParallel.

Each distributed run happens in fresh processes (the device count and
TF_CONFIG must be set before the backend starts) running
tests/distributed_job.py, which trains the same tiny autoencoders with the
same seed and data under one configuration and saves the weights and every
replica's moving statistics. The tests compare those runs.

Tolerance: a distributed step sums the same per-example gradients in
another order, so float32 results agree to rounding, not bit for bit:
`rtol=1e-4, atol=1e-6` on every weight after two stages of two epochs
(differences seen here: at most 1.2e-7).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import REPO_ROOT
from workers import wait_for_workers

JOB = REPO_ROOT / "tests" / "distributed_job.py"
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
JOB_TIMEOUT = 400  # seconds; the slowest job takes about a minute on 2 busy cores


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), **extra)


def _start(mode, output, **env):
    return subprocess.Popen(
        [sys.executable, str(JOB), mode, str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(**env),
    )


def _finish(processes):
    """Waits for every process; kills them all if one outlives JOB_TIMEOUT."""
    deadline = time.monotonic() + JOB_TIMEOUT
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()  # a waiting TensorFlow worker ignores SIGTERM
                process.wait()
    return outputs


def _run(mode, output, **env):
    (log,) = _finish([_start(mode, output, **env)])
    return log


def _results(output, log):
    assert os.path.exists(output), log[-4000:]
    with open(f"{output}.errors.json") as file:
        errors = json.load(file)
    return dict(np.load(output)), errors


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def _configs(results):
    return sorted({key.split("/")[0] for key in results})


def _weights(results, config):
    keys = sorted(
        (k for k in results if k.startswith(f"{config}/weight_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    return [results[k] for k in keys]


def _assert_same_training(reference, distributed, config, **tolerance):
    pairs = list(zip(_weights(reference, config), _weights(distributed, config)))
    assert pairs, f"no weights saved for {config}"
    for i, (expected, got) in enumerate(pairs):
        np.testing.assert_allclose(got, expected, err_msg=f"{config} weight {i}", **tolerance)
    np.testing.assert_allclose(
        distributed[f"{config}/loss"], reference[f"{config}/loss"], **tolerance
    )


def _replica_statistics(results, config):
    return {k: v for k, v in results.items() if k.startswith(f"{config}/replicas/")}


def _assert_replicas_agree(results, config, replicas):
    statistics = _replica_statistics(results, config)
    assert statistics, f"{config} has no moving statistics"
    for name, values in statistics.items():
        assert values.shape[0] == replicas, name
        for replica in values[1:]:
            np.testing.assert_array_equal(replica, values[0], err_msg=name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="module")
def tf_single(workdir):
    output = workdir / "tf_single.npz"
    return _results(output, _run("tf_single", output))


@pytest.fixture(scope="module")
def tf_mirrored(workdir):
    output = workdir / "tf_mirrored.npz"
    return _results(output, _run("tf_mirrored", output))


@pytest.fixture(scope="module")
def tf_multi_worker(workdir):
    ports = _free_ports(2)
    outputs = [workdir / f"tf_worker_{i}.npz" for i in range(2)]
    processes = [
        _start("tf_multi_worker", outputs[i], TF_CONFIG=_tf_config(ports, i)) for i in range(2)
    ]
    logs = _finish(processes)
    return [_results(output, log)[0] for output, log in zip(outputs, logs)]


@pytest.fixture(scope="module")
def jax_runs(workdir):
    single, parallel = workdir / "jax_single.npz", workdir / "jax_data_parallel.npz"
    return _results(single, _run("jax_single", single)), _results(
        parallel, _run("jax_data_parallel", parallel)
    )


# --- TensorFlow: MirroredStrategy on two logical CPUs -------------------------


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("config", ["none", "shared_sync"])
def test_mirrored_strategy_matches_single_device(tf_single, tf_mirrored, config):
    # Without normalization, or with batch statistics synchronized across
    # replicas, two replicas on half batches compute the single-device step.
    _assert_same_training(tf_single[0], tf_mirrored[0], config, **TOLERANCE)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("config", ["shared", "shared_off", "shared_sync"])
def test_mirrored_replicas_keep_one_set_of_shared_norm_statistics(tf_mirrored, config):
    # Keras 3 alone lets every replica update its own moving statistics;
    # SharedBatchNorm keeps them identical on both replicas.
    _assert_replicas_agree(tf_mirrored[0], config, replicas=2)


@pytest.mark.backend("tensorflow")
def test_mirrored_unsynchronized_norm_differs_from_single_device_as_documented(
    tf_single, tf_mirrored
):
    # Without `synchronized=True` each replica normalizes with the statistics
    # of its own half batch: close to, but not, the single-device result.
    reference, distributed = tf_single[0], tf_mirrored[0]
    gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(_weights(reference, "shared"), _weights(distributed, "shared"))
    )
    assert 1e-5 < gap < 0.1


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize(
    "case, message",
    [
        ("distribution_after_trainer", r"runs under MirroredStrategy.*created outside of it"),
        (
            "model_built_before_distribution",
            r"created under MirroredStrategy.*weights were created outside",
        ),
        (
            "trainer_created_outside_the_model_scope",
            r"outside any distribution scope.*weights were created inside",
        ),
    ],
)
def test_mirrored_bad_configurations_raise(tf_mirrored, case, message):
    import re

    assert re.search(f"ValueError: .*{message}", tf_mirrored[1][case]), tf_mirrored[1][case]


# --- TensorFlow: MultiWorkerMirroredStrategy, two workers on localhost --------


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("config", ["none", "shared_sync"])
def test_multi_worker_matches_single_device(tf_single, tf_multi_worker, config):
    _assert_same_training(tf_single[0], tf_multi_worker[0], config, **TOLERANCE)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("config", ["none", "shared", "shared_off", "shared_sync"])
def test_multi_worker_workers_end_with_the_same_model(tf_multi_worker, config):
    first, second = tf_multi_worker
    # Weights include the moving statistics: one set across both workers.
    for a, b in zip(_weights(first, config), _weights(second, config)):
        np.testing.assert_array_equal(a, b)
    assert _replica_statistics(first, config) or config == "none"


@pytest.mark.backend("tensorflow")
def test_a_worker_whose_peer_never_starts_fails_with_a_clear_error(workdir):
    output = workdir / "lonely_worker.npz"
    start = time.monotonic()
    log = _run(
        "tf_multi_worker",
        output,
        TF_CONFIG=_tf_config(_free_ports(2), 0),
        WAIT_FOR_WORKERS_TIMEOUT="3",
    )
    assert not output.exists()
    assert "TimeoutError" in log and "could not reach ['localhost:" in log, log[-3000:]
    assert time.monotonic() - start < 120


# --- JAX: keras.distribution.DataParallel on two host devices ----------------


@pytest.mark.backend("jax")
@pytest.mark.parametrize("config", ["none", "shared", "shared_off"])
def test_data_parallel_matches_single_device(jax_runs, config):
    # JAX computes batch statistics over the global batch: exact for shared
    # norms too.
    (single, _), (parallel, _) = jax_runs
    _assert_same_training(single, parallel, config, **TOLERANCE)


@pytest.mark.backend("jax")
@pytest.mark.parametrize("config", ["shared", "shared_off"])
def test_data_parallel_devices_keep_one_set_of_shared_norm_statistics(jax_runs, config):
    _assert_replicas_agree(jax_runs[1][0], config, replicas=2)


@pytest.mark.backend("jax")
@pytest.mark.parametrize(
    "case, message",
    [
        ("distribution_after_trainer", r"runs under DataParallel.*created outside of it"),
        (
            "model_built_before_distribution",
            r"created under DataParallel.*weights were created outside",
        ),
        (
            "trainer_created_outside_the_model_scope",
            r"outside any distribution scope.*weights were created inside",
        ),
    ],
)
def test_data_parallel_bad_configurations_raise(jax_runs, case, message):
    import re

    errors = jax_runs[1][1]
    assert re.search(f"ValueError: .*{message}", errors[case]), errors[case]


# --- wait_for_workers: pure Python, every backend -----------------------------


def test_wait_for_workers_times_out_naming_the_missing_peer(monkeypatch):
    ports = _free_ports(2)
    monkeypatch.setenv("TF_CONFIG", _tf_config(ports, 1))
    start = time.monotonic()
    with pytest.raises(
        TimeoutError,
        match=rf"'localhost:{ports[1]}' could not reach \['localhost:{ports[0]}'\] within 1 s",
    ):
        wait_for_workers(timeout=1, poll_interval=0.05)
    assert time.monotonic() - start < 10


def test_workers_waiting_at_the_same_time_find_each_other():
    ports = _free_ports(2)
    found = {}

    def worker(index):
        config = json.loads(_tf_config(ports, index))
        found[index] = wait_for_workers(timeout=20, poll_interval=0.05, tf_config=config)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert found == {0: [f"localhost:{ports[1]}"], 1: [f"localhost:{ports[0]}"]}


def test_a_peer_that_reached_us_and_stopped_listening_counts_as_found():
    # The race CI once lost: worker 1 reached worker 0 first, returned and
    # closed its port before worker 0 had tried it.
    ports = _free_ports(2)
    found = []
    waiter = threading.Thread(
        target=lambda: found.append(
            wait_for_workers(
                timeout=20, poll_interval=0.05, tf_config=json.loads(_tf_config(ports, 0))
            )
        )
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("localhost", ports[0]), timeout=1) as peer:
                peer.sendall(f"localhost:{ports[1]}".encode())
            break
        except OSError:
            assert time.monotonic() < deadline, "worker 0 never listened"
            time.sleep(0.05)
    waiter.join(30)
    assert found == [[f"localhost:{ports[1]}"]]


@pytest.mark.parametrize(
    "value", [None, "{}", '{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}']
)
def test_wait_for_workers_without_a_valid_tf_config(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        wait_for_workers(timeout=1)


def test_wait_for_workers_when_its_own_port_is_taken(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        monkeypatch.setenv("TF_CONFIG", _tf_config([port, _free_ports(1)[0]], 0))
        with pytest.raises(OSError, match=rf"'localhost:{port}'.*port {port} is in use"):
            wait_for_workers(timeout=1)
