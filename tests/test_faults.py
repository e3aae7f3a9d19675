"""Faults are normal: a killed worker's unit runs again, a killed parent's workers exit, SIGTERM and Ctrl-C stop
cleanly (also with both cores busy), and a re-run finishes exactly what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from senprep_core.config import parse_config
from senprep_core.outputs.run_folder import RunFolder
from senprep_core.pipeline import run
from tests.conftest import N_SCALE_PRODUCTS, run_files, scale_config_dict


def _start(
    outdir: Path, products: Path, tmp: Path, *flags: str, stdout: int | None = subprocess.PIPE
) -> subprocess.Popen[str]:
    config = tmp / "config.json"
    config.write_text(json.dumps(scale_config_dict()))
    cmd = [sys.executable, "-m", "senprep_core.cli", "run", "--config", str(config), "--outdir", str(outdir),
           "--source", f"local:{products}", *flags]  # fmt: skip
    return subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, text=True)


def _events(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        if line.startswith("{"):
            yield json.loads(line)


def _no_partial_files(outdir: Path) -> set[str]:
    """The complete units; asserts no temporary file and no unit folder without its manifest."""
    assert not [p for p in outdir.rglob("*") if ".tmp-" in p.name]
    complete = set()
    for unit_dir in sorted((outdir / "patches").iterdir()) if (outdir / "patches").exists() else []:
        if (unit_dir / "unit.json").exists():
            complete.add(unit_dir.name)
        else:
            assert not list(unit_dir.iterdir()), f"partial files left in {unit_dir}"
    return complete


def test_a_killed_worker_has_its_unit_run_again_and_the_run_completes(
    scale_products: Path, scale_serial_run: Path, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    proc = _start(outdir, scale_products, tmp_path, "--njobs", "2", "--log-json")
    assert proc.stdout is not None
    where: dict[str, int] = {}
    victim: str | None = None
    for event in _events(proc.stdout):
        if event["event"] == "UnitStarted":
            where[event["unit_id"]] = int(event["worker"].rsplit(":", 1)[1])
        elif event["event"] == "PatchWritten" and victim is None:  # mid-unit: what the OOM killer does
            victim = event["unit_id"]
            os.kill(where[victim], signal.SIGKILL)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert victim is not None, "no worker was killed"
    report = RunFolder(outdir).read_report()
    units = {u["unit_id"]: u for u in report["units"]}
    assert report["status"] == "complete" and len(units) == N_SCALE_PRODUCTS
    assert all(u["status"] == "done" for u in units.values())
    assert units[victim]["retries"] == 1 and report["counts"]["retries"] == 1
    assert sum("retries" in u for u in units.values()) == 1
    assert run_files(outdir) == run_files(scale_serial_run)  # byte-identical to a serial run


def test_a_unit_whose_worker_always_dies_fails_with_a_clear_error(scale_products: Path, tmp_path: Path) -> None:
    """Bounded retries: a unit that kills its worker every time is given up after three attempts."""
    from senprep_core.executors import MAX_ATTEMPTS, ProcessExecutor

    config = parse_config(scale_config_dict(dates=["2022-06-01", "2022-07-31"]))
    result = run(config, tmp_path / "out", sources=[f"local:{scale_products}"], executor=ProcessExecutor(2),
                 callback=_kill_worker_of(config.name))  # fmt: skip
    assert result.status == "failed" and result.exit_code == 1
    (failed, *_) = result.failed
    assert failed.error_type == "WorkerLostError" and f"died {MAX_ATTEMPTS} times" in (failed.error_message or "")
    assert failed.retries == MAX_ATTEMPTS - 1


def _kill_worker_of(_name: str) -> Any:
    """A callback that SIGKILLs the worker of every unit at its first patch."""
    from senprep_core.events import Event, PatchWritten, UnitStarted

    where: dict[str, int] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, UnitStarted):
            where[event.unit_id] = int(event.worker.rsplit(":", 1)[1])
        elif isinstance(event, PatchWritten) and event.unit_id in where:
            os.kill(where.pop(event.unit_id), signal.SIGKILL)

    return on_event


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_of_a_killed_parent_exit_and_release_its_output(scale_products: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    proc = _start(outdir, scale_products, tmp_path, "--njobs", "2", "--log-json")
    assert proc.stdout is not None
    for event in _events(proc.stdout):
        if event["event"] == "PatchWritten":
            break
    family = psutil.Process(proc.pid).children(recursive=True)
    assert len(family) >= 2  # the fork server and the worker processes
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    eof = threading.Event()
    reader = threading.Thread(target=lambda: (proc.stdout.read(), eof.set()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    _, alive = psutil.wait_procs(family, timeout=3.0)
    alive = [p for p in alive if _running(p)]  # a zombie has exited; only its reaping is left to init
    assert not alive, f"still alive 3 s after the parent died: {[p.pid for p in alive]}"
    assert eof.wait(3.0 - (time.monotonic() - killed) + 0.5), "the caller's stdout stayed open"
    proc.wait()
    proc.stdout.close()


@pytest.mark.parametrize("flags", [[], ["--njobs", "2"]], ids=["serial", "njobs2"])
def test_sigterm_stops_like_ctrl_c_and_a_rerun_completes_what_is_missing(
    scale_products: Path, tmp_path: Path, flags: list[str]
) -> None:
    outdir = tmp_path / "out"
    proc = _start(outdir, scale_products, tmp_path, "--quiet", *flags, stdout=subprocess.DEVNULL)
    _wait_for_first_patch(outdir, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    complete = _no_partial_files(outdir)
    assert RunFolder(outdir).read_report()["status"] == "cancelled" and len(complete) < N_SCALE_PRODUCTS
    result = run(parse_config(scale_config_dict()), outdir, sources=[f"local:{scale_products}"])
    assert result.status == "complete"
    assert {r.unit_id for r in result.results if r.status == "skipped"} == complete


def _wait_for_first_patch(outdir: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and not list(outdir.glob("patches/*/*.tif")):
        assert proc.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.01)


class _BusyCores:
    """Both cores kept busy by two spinning processes for the length of a ``with`` block."""

    def __enter__(self) -> _BusyCores:
        spin = "while True: pass"
        self.spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in self.spinners:
            p.kill()
            p.wait()


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--njobs", "2"]], ids=["serial", "njobs2"])
def test_ctrl_c_stops_within_two_seconds_twenty_times_with_both_cores_busy(
    scale_products: Path, tmp_path: Path, flags: list[str]
) -> None:
    times = []
    with _BusyCores():
        for attempt in range(20):
            outdir = tmp_path / f"out{attempt}"
            proc = _start(outdir, scale_products, tmp_path, "--quiet", *flags, stdout=subprocess.DEVNULL)
            _wait_for_first_patch(outdir, proc)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
            times.append(time.monotonic() - t0)
            _no_partial_files(outdir)
            assert RunFolder(outdir).read_report()["status"] == "cancelled"
    assert max(times) < 2.0, f"stop times (s): {[round(t, 2) for t in times]}"
