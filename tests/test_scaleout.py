"""Scale-out: the same plan serially, in worker processes and on a real Dask cluster on 127.0.0.1.

Outputs are byte-identical across executors; a killed Dask worker's units are retried elsewhere;
SIGINT stops a run within 2 s without partial files; events from remote workers arrive live.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from senprep_core.config import parse_config
from senprep_core.events import Event, PatchProgress, PatchWritten, RunFinished, RunStarted, UnitFinished, UnitStarted
from senprep_core.executors import DaskExecutor, ProcessExecutor
from senprep_core.pipeline import run
from tests.conftest import N_SCALE_PRODUCTS, run_files, scale_config_dict

N_PRODUCTS = N_SCALE_PRODUCTS
WORKER_FLAGS = ("--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")


def _config_dict() -> dict[str, Any]:
    return scale_config_dict()


@pytest.fixture(scope="module")
def products(scale_products: Path) -> Path:
    return scale_products


@pytest.fixture(scope="module")
def serial_run(scale_serial_run: Path) -> Path:
    return scale_serial_run


def _files(outdir: Path) -> dict[str, bytes]:
    return run_files(outdir)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A Dask scheduler and workers started with the ``dask`` command on 127.0.0.1."""

    def __init__(self, n_workers: int) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        dask = str(Path(sys.executable).with_name("dask"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"], **quiet
        )
        self.workers = {
            f"w{i}": subprocess.Popen(
                [
                    dask,
                    "worker",
                    self.address,
                    "--name",
                    f"w{i}",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                **quiet,
            )
            for i in range(n_workers)
        }
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=60)
            self.names = {addr: info["name"] for addr, info in client.scheduler_info()["workers"].items()}

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            proc.terminate()
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a loaded machine: a worker may take long to stop
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(2)
    try:
        yield c
    finally:
        c.close()


def test_dask_and_process_runs_are_byte_identical_to_serial(
    products: Path, serial_run: Path, cluster: Cluster, tmp_path: Path
) -> None:
    config = parse_config(_config_dict())
    expected = _files(serial_run)
    assert any(k.endswith(".tif") for k in expected)
    dask_out = tmp_path / "dask"
    result = run(config, dask_out, sources=[f"local:{products}"], executor=DaskExecutor(cluster.address))
    assert result.status == "complete"
    assert _files(dask_out) == expected
    proc_out = tmp_path / "processes"
    result = run(config, proc_out, sources=[f"local:{products}"], executor=ProcessExecutor(2))
    assert result.status == "complete"
    assert _files(proc_out) == expected


def test_events_from_remote_workers_arrive_live(products: Path, cluster: Cluster, tmp_path: Path) -> None:
    received: list[tuple[float, Event]] = []
    config = parse_config(_config_dict())
    result = run(config, tmp_path / "out", sources=[f"local:{products}"], executor=DaskExecutor(cluster.address),
                 callback=lambda e: received.append((time.monotonic(), e)))  # fmt: skip
    events = [e for _, e in received]
    patches = [t for t, e in received if isinstance(e, PatchWritten)]
    unit_ends = [t for t, e in received if isinstance(e, UnitFinished)]
    run_end = next(t for t, e in received if isinstance(e, RunFinished))
    assert len(patches) == result.patches_written > 0
    assert sum(isinstance(e, UnitStarted) for e in events) == len(unit_ends) == len(result.plan.units)
    assert patches[0] < unit_ends[-1] < run_end  # patch events come while units are still running
    workers = {e.worker for e in events if isinstance(e, UnitStarted)}
    assert workers <= set(cluster.names) and len(workers) == 2  # both remote workers did work
    # each unit's last progress event counts all its patches (the plan's), written or left out
    started = next(e for e in events if isinstance(e, RunStarted))
    last = {e.unit_id: e for e in events if isinstance(e, PatchProgress)}
    assert set(last) == {u.unit_id for u in result.plan.units}
    assert all(e.done == e.total == started.patches_per_unit for e in last.values())
    assert sum(e.written for e in last.values()) == result.patches_written


def test_killed_worker_units_are_retried_elsewhere(products: Path, serial_run: Path, tmp_path: Path) -> None:
    local = Cluster(2)
    try:
        outdir = tmp_path / "out"
        killed: list[str] = []
        where: dict[str, str] = {}

        def on_event(event: Event) -> None:
            if isinstance(event, UnitStarted):
                where[event.unit_id] = event.worker
            if isinstance(event, PatchWritten) and not killed:  # kill the worker writing this unit, mid-unit
                victim = where[event.unit_id]
                killed.append(victim)
                os.kill(local.workers[local.names[victim]].pid, signal.SIGKILL)

        config = parse_config(_config_dict())
        result = run(config, outdir, sources=[f"local:{products}"], executor=DaskExecutor(local.address),
                     callback=on_event)  # fmt: skip
        assert killed, "no worker was killed"
        assert result.status == "complete" and len(result.results) == N_PRODUCTS
        assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
        assert _files(outdir) == _files(serial_run)  # nothing duplicated, nothing corrupt
        report = json.loads((outdir / "run.json").read_text())
        # a unit whose worker died after its manifest was written is found complete when retried
        assert all(u["status"] in ("done", "skipped") for u in report["units"])
        retried = [r for r in result.results if r.retries]
        assert retried, "the killed worker's unit should have been started again"
    finally:
        local.close()


@pytest.mark.parametrize("flags", [[], ["--njobs", "2"]])
def test_sigint_stops_within_two_seconds_and_rerun_completes(products: Path, tmp_path: Path, flags: list[str]) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(_config_dict()))
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "senprep_core.cli", "run", "--config", str(config_path), "--outdir", str(outdir),
           "--source", f"local:{products}", "--quiet", *flags]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(outdir.glob("patches/*/*.tif")):
        time.sleep(0.01)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    stopped = time.monotonic() - t0
    assert code == 130
    assert stopped < 2.0, f"took {stopped:.2f} s to stop"
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    complete = set()
    for unit_dir in (outdir / "patches").iterdir() if (outdir / "patches").exists() else []:
        if (unit_dir / "unit.json").exists():
            complete.add(unit_dir.name)
        else:
            assert not list(unit_dir.iterdir()), f"partial files left in {unit_dir}"
    report = json.loads((outdir / "run.json").read_text())
    assert report["status"] == "cancelled"
    assert len(complete) < N_PRODUCTS
    result = run(parse_config(_config_dict()), outdir, sources=[f"local:{products}"])
    assert result.status == "complete"
    skipped = {r.unit_id for r in result.results if r.status == "skipped"}
    assert skipped == complete  # only what was missing is redone


def test_failing_unit_is_recorded_with_its_traceback(products: Path, cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "products"
    folder.mkdir()
    good = sorted(products.iterdir())[:3]
    for p in good[:2]:
        (folder / p.name).symlink_to(p)
    broken = folder / good[2].name
    import shutil

    shutil.copytree(good[2], broken)
    band = next(broken.rglob("*_B04_10m.jp2"))
    band.write_bytes(band.read_bytes()[:2000])
    result = run(parse_config(_config_dict()), tmp_path / "out", sources=[f"local:{folder}"],
                 executor=DaskExecutor(cluster.address))  # fmt: skip
    assert result.exit_code == 1 and result.status == "partial"
    (failed,) = result.failed
    assert failed.unit_id == good[2].name.removesuffix(".SAFE")
    assert failed.error_type == "CorruptProductError" and "Traceback" in (failed.traceback or "")
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    units = {u["unit_id"]: u for u in report["units"]}
    assert units[failed.unit_id]["traceback"]
    assert sum(u["status"] == "done" for u in units.values()) == 2


def test_status_command_summarises_a_run(serial_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from senprep_core.cli import main

    assert main(["status", str(serial_run), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "complete" and summary["counts"]["done"] == N_PRODUCTS
    assert summary["to_redo"] == []


def test_plan_command_prints_the_units(products: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from senprep_core.cli import main

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(_config_dict()))
    assert main(["plan", "--config", str(config_path), "--source", f"local:{products}", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["units"]) == N_PRODUCTS and plan["patches_per_unit"] > 1
    assert not list(tmp_path.glob("out*"))  # planning writes nothing


def test_cancel_from_the_api_stops_new_work(products: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, UnitFinished):
            cancel.set()

    result = run(parse_config(_config_dict()), tmp_path / "out", sources=[f"local:{products}"], cancel=cancel,
                 callback=on_event)  # fmt: skip
    assert result.status == "cancelled" and result.exit_code == 130
    assert len(result.results) == 1
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert sum(u["status"] == "cancelled" for u in report["units"]) == N_PRODUCTS - 1


def test_cancel_mid_unit_stops_the_serial_run_at_the_next_patch(products: Path, tmp_path: Path) -> None:
    """A Ctrl-C swallowed on its way (e.g. inside a library callback) still stops the run: the CLI's handler sets
    the cancel event before raising, and the serial executor checks it after every event."""
    cancel = threading.Event()
    patches: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, PatchWritten):
            patches.append(event.unit_id)
            cancel.set()

    outdir = tmp_path / "out"
    result = run(parse_config(_config_dict()), outdir, sources=[f"local:{products}"], cancel=cancel,
                 callback=on_event)  # fmt: skip
    assert result.status == "cancelled" and result.exit_code == 130
    assert len(patches) == 1 and not result.results  # stopped right after the first patch of the first unit
    assert not [p for p in outdir.rglob("*") if p.is_file() and "patches" in p.parts]  # its partial unit is gone
    report = json.loads((outdir / "run.json").read_text())
    assert all(u["status"] == "cancelled" for u in report["units"])


class _LateStartEventExecutor:
    """Runs units in this thread, but as if the first unit's first worker died after starting it: its
    retry's result comes back before the retry's start event (as Dask may deliver them)."""

    name = "late-events"

    def start(self) -> None:
        return None

    def map_units(self, units: Any, task: Any, dispatch: Any, cancel: threading.Event) -> Iterator[Any]:
        held: list[Event] = []
        for index, unit in enumerate(units):
            if index == 0:
                dispatch(UnitStarted(unit_id=unit.unit_id, description="lost", worker="tcp://lost-worker:1"))
                result = task(unit, lambda e: held.append(e) if isinstance(e, UnitStarted) else dispatch(e))
                yield result  # the retry's result first...
                for event in held:  # ...its start event later
                    dispatch(event)
            else:
                yield task(unit, dispatch)

    def close(self) -> None:
        return None


def test_a_retry_is_counted_even_when_its_start_event_comes_after_its_result(products: Path, tmp_path: Path) -> None:
    result = run(parse_config(_config_dict()), tmp_path / "out", sources=[f"local:{products}"],
                 executor=_LateStartEventExecutor())  # fmt: skip
    assert result.status == "complete"
    first, *others = result.results
    assert first.retries == 1 and first.worker and first.worker != "tcp://lost-worker:1"
    assert all(r.retries is None for r in others)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["units"][0]["retries"] == 1 and "worker" in report["units"][0]


def test_cancel_stops_the_running_dask_tasks_and_leaves_nothing_partial(
    products: Path, cluster: Cluster, tmp_path: Path
) -> None:
    cancel = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PatchWritten):
            cancel.set()

    outdir = tmp_path / "out"
    t0 = time.monotonic()
    result = run(parse_config(_config_dict()), outdir, sources=[f"local:{products}"], cancel=cancel,
                 callback=on_event, executor=DaskExecutor(cluster.address))  # fmt: skip
    assert result.status == "cancelled" and time.monotonic() - t0 < 15
    time.sleep(1.0)  # a task that kept writing would show up now
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    for unit_dir in (outdir / "patches").iterdir() if (outdir / "patches").exists() else []:
        assert (unit_dir / "unit.json").exists() or not list(unit_dir.iterdir()), f"partial files in {unit_dir}"
