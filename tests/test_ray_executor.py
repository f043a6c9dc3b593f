"""The Ray executor on a local Ray: a tiny study end to end with a worker killed mid-run, equal to the
same study run serially, leaving no Ray process behind; a run that kills its worker every time; a
driver SIGKILLed mid-study, whose Ray's leftovers the next run ends before it completes the study;
and one clear error for each bad input (Ray missing, a malformed address, an address nobody answers).

Ray processes are found in /proc by their command line (Ray's own executables, its Python services
and its ``ray::`` workers), before, during and after each study.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.cli import main as cli_main
from transfer_influence.errors import ConfigError, InputError, RunFailedError
from transfer_influence.execute import make_executor
from transfer_influence.execute import ray_executor
from transfer_influence.execute.work import FAULT_ENV
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.store import StudyStore

from .conftest import tiny_config_dict, write_config

pytest.importorskip("ray", reason="the Ray extra is not installed (pip install '.[ray]'; `make test` installs it)")

MODELS = 4
RAY_MARKERS = ("/site-packages/ray/", "ray::")
GUARD_S = 240
"""Wall-clock guard for the driver subprocess: far beyond what a working build needs."""


def ray_config_dict(**overrides: object) -> dict:
    return tiny_config_dict(
        **{"num_models": MODELS, "execution.executor": "ray", "execution.workers": 2, **overrides}
    )


def ray_pids() -> set[int]:
    """Live processes that belong to some Ray (this test process excluded)."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(marker in command for marker in RAY_MARKERS):
            found.add(int(entry))
    return found


@pytest.fixture
def watch_ray(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """Ray processes before the study and while its runs execute (seen from inside ``execute``)."""
    seen: dict[str, set[int]] = {"before": ray_pids(), "during": set()}
    original = ray_executor._RayScheduler.run

    def run_and_look(self):  # type: ignore[no-untyped-def]
        seen["during"] = ray_pids()
        return original(self)

    monkeypatch.setattr(ray_executor._RayScheduler, "run", run_and_look)
    return seen


def started_by_the_study_and_alive(seen: dict[str, set[int]]) -> set[int]:
    return (seen["during"] - seen["before"]) & ray_pids()


def test_ray_study_survives_a_killed_worker_equals_a_serial_study_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch_ray: dict[str, set[int]]
) -> None:
    killed = f"subset-{MODELS - 1:06d}"
    monkeypatch.setenv(FAULT_ENV, killed)  # its worker dies (os._exit) the first time the run starts
    config = write_config(tmp_path / "ray.yaml", ray_config_dict(**{"execution.ray.max_retries": 1}))
    study = tmp_path / "ray-study"
    assert cli_main(["run", str(config), "--out", str(study), "--quiet"]) == 0

    assert watch_ray["during"] - watch_ray["before"], "no Ray process was seen while the study ran"
    assert not started_by_the_study_and_alive(watch_ray)
    assert not ray_executor.local_ray_dir(study).exists()  # the local Ray's folder went with it
    assert len((study / f".crashed-{killed}").read_text().splitlines()) == 1  # Ray restarted it by itself

    store = StudyStore.open(study)
    records = {run_id: store.read_run_mask_and_record(run_id)[1] for run_id in store.finished_run_ids()}
    assert len(records) == MODELS + 2  # subset runs plus one all-source and one random-init baseline
    assert all(record["pid"] != os.getpid() for record in records.values())  # written by Ray workers

    monkeypatch.delenv(FAULT_ENV)
    serial = tmp_path / "serial-study"
    run_study(parse_config(tiny_config_dict(num_models=MODELS)), serial, progress=False, stream=io.StringIO())
    serial_store = StudyStore.open(serial)
    assert serial_store.finished_run_ids() == set(records)
    for run_id in records:
        mask, outputs, _ = store.read_run(run_id)
        serial_mask, serial_outputs, _ = serial_store.read_run(run_id)
        assert np.array_equal(mask, serial_mask)
        for kind, values in outputs.items():
            np.testing.assert_allclose(values, serial_outputs[kind], rtol=1e-5, atol=1e-6, err_msg=f"{run_id} {kind}")


def test_run_killing_its_worker_every_time_fails_after_max_attempts_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch_ray: dict[str, set[int]]
) -> None:
    doomed = f"subset-{MODELS - 1:06d}"  # the last run: every other one has started before it fails for good
    monkeypatch.setenv(FAULT_ENV, f"{doomed}:always")
    config = parse_config(ray_config_dict(**{"execution.max_attempts": 2, "execution.ray.max_retries": 0}))
    study = tmp_path / "study"
    stream = io.StringIO()
    with pytest.raises(RunFailedError, match=rf"{doomed} failed 2 times \(last: its Ray worker died"):
        run_study(config, study, progress=False, stream=stream)
    assert f"run {doomed} attempt 1 of 2 failed: its Ray worker died" in stream.getvalue()
    assert len((study / f".crashed-{doomed}").read_text().splitlines()) == 2
    finished = StudyStore.open(study).finished_run_ids()
    assert doomed not in finished and len(finished) == MODELS + 1  # every other run finished and was kept
    assert not started_by_the_study_and_alive(watch_ray)
    logs = ray_executor.local_ray_dir(study)
    assert any(logs.glob("session_*/logs")), "a failed study keeps its local Ray's logs"
    shutil.rmtree(logs)


def test_run_after_a_sigkilled_driver_ends_what_its_ray_left_and_completes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "ray.yaml", ray_config_dict())
    study = tmp_path / "study"
    before = ray_pids()
    driver = subprocess.Popen(
        [sys.executable, "-m", "transfer_influence.cli", "run", str(config), "--out", str(study), "--quiet"],
        env={**os.environ, FAULT_ENV: "subset-000002:hang"},  # keeps the study running until the driver dies
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + GUARD_S
    while not (study / ".hung-subset-000002").exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not (study / ".hung-subset-000002").exists():
        os.killpg(driver.pid, signal.SIGKILL)
        pytest.fail(f"the driver never reached the hanging run (exit code {driver.poll()})")
    started = ray_pids() - before
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as a crash or an OOM kill would
    driver.wait()

    stream = io.StringIO()
    run_study(parse_config(ray_config_dict()), study, progress=False, stream=stream)
    assert started, "no Ray process was seen while the first driver ran"
    assert not started & ray_pids(), "processes of the killed driver's Ray are still alive"
    assert "left behind by an earlier, killed local Ray of this study" in stream.getvalue()
    assert len(StudyStore.open(study).finished_run_ids()) == MODELS + 2


# ---- bad input: one clear error each, before any Ray starts ---------------------------------------


def test_missing_ray_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    config = parse_config(ray_config_dict())
    with pytest.raises(ConfigError, match=r"pip install 'transfer-influence\[ray\]'"):
        make_executor(config, tmp_path, 4)


def test_malformed_address_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"execution.ray.address: .*'head-node' is not HOST:PORT"):
        parse_config(ray_config_dict(**{"execution.ray.address": "head-node"}))
    config = write_config(tmp_path / "c.yaml", tiny_config_dict())
    code = cli_main(["run", str(config), "--out", str(tmp_path / "s"), "--executor", "ray", "--address", "head:port"])
    assert code == 2
    assert "'head:port' is not HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_address_without_a_ray_cluster_is_refused_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = parse_config(ray_config_dict(**{"execution.ray.address": f"127.0.0.1:{port}"}))
    executor = make_executor(config, tmp_path, 4)
    with pytest.raises(InputError, match=rf"no Ray cluster answers at 127.0.0.1:{port}.*ray start --head"):
        executor.execute([], lambda summary: False)


def test_address_option_needs_the_ray_executor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "c.yaml", tiny_config_dict())
    assert cli_main(["run", str(config), "--out", str(tmp_path / "s"), "--address", "10.0.0.5:6379"]) == 2
    assert "--address is the Ray head node's address: add --executor ray" in capsys.readouterr().err
