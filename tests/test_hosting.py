"""Ray hosting: placement, checkpoints and resume, host failures, clusters, and the run lock.

These are the only tests that use Ray: each run here sets hosting.mode=ray."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
from typer.testing import CliRunner

from ecosystem import resume, run
from ecosystem.cli import app
from ecosystem.config import Config, load_config
from ecosystem.progress import Stage, StageStart
from ecosystem.results import ResultsError, RunDirectory, Status
from tests.helpers import SMALL, TINY, as_options, read_edges, read_manifest, read_metrics

CASCADE = [sys.executable, "-m", "ecosystem.cli"]
RAY = "hosting.mode=ray"
pytestmark = pytest.mark.usefixtures("ray_cluster")


def ray_config(*overrides: str) -> Config:
    return load_config(overrides=[*SMALL, RAY, *overrides])


def test_two_and_four_ray_hosts_give_the_metrics_of_one_host_in_process(tmp_path) -> None:
    """Groups of one node here, so that four hosts have work (groups of two on two hosts: the next test)."""
    tiny = [*TINY, "cycles=2", "hosting.group_size=1"]
    reference = run(load_config(overrides=tiny), tmp_path / "in-process")  # one shard, in this process
    assert len(read_manifest(reference.path).placement) == 1
    for hosts in (2, 4):
        out = tmp_path / f"hosts-{hosts}"
        result = run(load_config(overrides=[*tiny, RAY, f"hosting.hosts={hosts}", "hosting.num_cpus=0.5"]), out)
        assert len(read_manifest(out).placement) == hosts
        assert result.metrics.equals(reference.metrics)
        assert read_edges(out).equals(read_edges(reference.path))


def test_hosts_that_cannot_fit_the_cluster_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="do not fit in the Ray cluster"):
        run(ray_config("hosting.hosts=2", "hosting.num_cpus=1.5"), tmp_path / "r")


def test_an_address_nothing_answers_at_is_refused_though_this_process_has_ray(tmp_path) -> None:
    """The bad-input table's case, with Ray already up in the process (here: this file's cluster)."""
    assert ray.is_initialized()
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--ray-address", "127.0.0.1:1"])
    assert result.exit_code == 2 and "nothing answers at 127.0.0.1:1" in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_host_killed_mid_cycle_is_restored_and_the_results_are_unchanged(small_run, tmp_path) -> None:
    out = tmp_path / "killed-host"
    killed = []

    def kill_a_host(start: StageStart) -> None:
        if start.stage is Stage.train and start.cycle == 2 and not killed:
            host = ray.get_actor(f"ecosystem-{read_manifest(out).run_id}-1")
            ray.kill(host, no_restart=False)
            killed.append(start.cycle)

    result = run(ray_config(), out, kill_a_host)
    assert killed == [2]
    assert read_manifest(out).recoveries >= 1
    assert read_manifest(out).placement == [[0, 1], [2, 3]]  # whole groups of two, one per host
    assert result.metrics.equals(read_metrics(small_run))  # computed in process, one host


def test_a_driver_killed_after_cycle_2_resumes_to_identical_metrics(tmp_path, caplog) -> None:
    """SIGKILL of the driver alone (not its process group): its embedded Ray's processes end after it,
    and the run resumes to the metrics of an undisturbed one."""
    tiny = [*TINY, "cycles=4"]  # cycles of about a second: a kill after cycle 2 leaves two to resume
    reference = run(load_config(overrides=tiny), tmp_path / "reference").metrics  # in process: the same numbers
    out = tmp_path / "killed-driver"
    driver = subprocess.Popen(
        [*CASCADE, "run", "--out", str(out), *as_options([*tiny, RAY])],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_ADDRESS": "127.0.0.1:9"},  # a stray cluster address: the embedded Ray ignores it
    )
    latest = out / "checkpoints" / "latest.json"
    try:
        deadline = time.monotonic() + 300
        while not (latest.exists() and json.loads(latest.read_text())["cycle"] >= 2):
            assert driver.poll() is None and time.monotonic() < deadline, "the run ended before cycle 2"
            time.sleep(0.05)
        left_behind = psutil.Process(driver.pid).children(recursive=True)
        assert any("raylet" in process.name() for process in left_behind)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # Ray's two agents see their raylet die at once, then spend up to Ray's fixed 60 s trying to
        # report that to a GCS that died with it (ray._private.process_watcher): measured 62 s here.
        _, alive = psutil.wait_procs(left_behind, timeout=90)
        assert alive == [], f"still running 90 s after the driver died: {[p.name() for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # should the test fail before the kill
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert read_manifest(out).status is Status.running  # killed, not finished
    assert json.loads(latest.read_text())["cycle"] == 2
    result = resume(out)
    assert "taking over the stale lock" in caplog.text
    assert result.metrics.equals(reference)
    assert read_manifest(out).status is Status.complete and read_manifest(out).resumed[0].after_cycle == 2


def test_a_directory_in_use_by_a_live_run_is_refused(tmp_path) -> None:
    out = tmp_path / "busy"
    with RunDirectory(out).lock():
        with pytest.raises(ResultsError, match="in use by a live run"):
            run(ray_config(), out)
        (out / "config.toml").write_text(ray_config().to_toml())
        result = CliRunner().invoke(app, ["run", "--resume", str(out)])
        assert result.exit_code == 2 and "in use by a live run" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.toml"]


def test_a_damaged_checkpoint_is_refused_with_a_message(small_run, tmp_path) -> None:
    out = shutil.copytree(small_run, tmp_path / "damaged")
    RunDirectory(out).write_manifest(read_manifest(small_run).model_copy(update={"status": Status.running}))
    node = next((out / "checkpoints" / "cycle-2").iterdir())
    node.write_bytes(b"not safetensors")
    result = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert result.exit_code == 2 and "no usable checkpoint" in result.stderr
    (out / "checkpoints" / "latest.json").write_text("{")
    with pytest.raises(ResultsError, match="no usable checkpoint"):
        resume(out)
    assert read_metrics(out).equals(read_metrics(small_run))  # nothing was lost


def test_resuming_a_complete_run_or_an_empty_directory_is_refused(small_run, tmp_path) -> None:
    with pytest.raises(ResultsError, match="already complete"):
        resume(small_run)
    with pytest.raises(ResultsError, match="no run to resume"):
        resume(tmp_path)


def test_a_run_on_a_separately_started_local_cluster(tmp_path) -> None:
    reference = run(load_config(overrides=TINY), tmp_path / "reference").metrics  # in process
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_command = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_command, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--block"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        out = tmp_path / "on-cluster"
        done = subprocess.run(
            [*CASCADE, "run", "--ray-address", f"127.0.0.1:{port}", "--out", str(out), *as_options([*TINY, RAY])],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert read_metrics(out).equals(reference)
        assert read_manifest(out).status is Status.complete
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the cluster's processes share the head's session: at once, not
        head.wait()  # Ray's graceful stop, which takes about 30 s
