"""Per-account connection limits across a whole run: CDSE allows an account 4 connections at once, and a run
with ``--njobs 2`` / ``3`` or two / three Dask workers (each fetching the files of its unit on 4 threads) must
never open more. The CDSE test server counts the authenticated requests in flight per account."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from senprep_core.cli import main
from senprep_core.fetch.slots import ENV_SLOTS, FileSlots, SlotPlan, account_key, plan_for
from tests.conftest import scale_config_dict
from tests.servers.cdse_server import CdseServer

pytestmark = pytest.mark.integration

USER = "limits@example.org"
PASSWORD = "Limit-Pa55word"
N_PRODUCTS = 4
RATE = 400_000  # bytes per second and connection: each band file takes a second or two


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, scale_products: Path) -> Iterator[CdseServer]:
    chosen = tmp_path_factory.mktemp("limit-products")
    for product in sorted(scale_products.iterdir())[:N_PRODUCTS]:
        (chosen / product.name).symlink_to(product)
    srv = CdseServer(tmp_path_factory.mktemp("cdse-limits"), username=USER, password=PASSWORD, rate_bps=RATE)
    srv.add_products(chosen)
    srv.start()
    yield srv
    srv.stop()


def _run(server: CdseServer, tmp_path: Path, *executor: str) -> int:
    config = tmp_path / "scale.json"
    config.write_text(json.dumps(scale_config_dict()))
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"username": USER, "password": PASSWORD}))
    credentials.chmod(0o600)
    server.peak.clear()
    args = ["--config", str(config), "--outdir", str(tmp_path / "out"), "--source", f"cdse:{server.url}"]
    args += ["--credentials", str(credentials), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    return main(["run", *args, *executor])


def _units_done(tmp_path: Path) -> int:
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    return int(report["counts"]["done"])


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_share_the_four_connections(server: CdseServer, tmp_path: Path, workers: int) -> None:
    assert _run(server, tmp_path, "--njobs", str(workers)) == 0
    assert _units_done(tmp_path) == N_PRODUCTS
    assert server.peak[USER] == 4  # the limit is reached (the units overlap) and never passed
    slots = list((tmp_path / "cache" / "connections").glob("cdse-*.slot"))
    assert len(slots) == 4 and USER not in " ".join(p.name for p in slots)  # keyed by a hash, not the e-mail


@pytest.mark.parametrize("workers", [2, 3])
def test_dask_workers_share_the_four_connections(server: CdseServer, tmp_path: Path, workers: int) -> None:
    pytest.importorskip("distributed")
    assert _run(server, tmp_path, "--dask-workers", str(workers)) == 0
    assert _units_done(tmp_path) == N_PRODUCTS
    assert server.peak[USER] == 4
    assert not (tmp_path / "cache" / "connections").exists()  # Dask semaphores, not lock files


def test_without_shared_slots_the_workers_open_more(
    server: CdseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: with per-process limits only, three workers open more than 4 connections."""
    monkeypatch.setenv(ENV_SLOTS, "local")
    assert _run(server, tmp_path, "--njobs", "3") == 0
    assert server.peak[USER] > 4


def test_file_slots_exclude_threads_and_release_on_exit(tmp_path: Path) -> None:
    slots = FileSlots(tmp_path, account_key("cdse", USER), 2)
    inside, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        with slots.hold():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and inside[0] == 0


def test_plan_follows_the_executor_and_the_environment(tmp_path: Path) -> None:
    assert plan_for("processes", tmp_path) == SlotPlan("files", str(tmp_path / "connections"))
    assert plan_for("serial", tmp_path).kind == "files"
    assert plan_for("dask", tmp_path, override="").kind == "dask"
    assert plan_for("dask", tmp_path, override="files").folder == str(tmp_path / "connections")
    assert plan_for("processes", tmp_path, override="local") == SlotPlan("local")
    with pytest.raises(ValueError, match="SENPREP_CONNECTION_SLOTS"):
        plan_for("serial", tmp_path, override="everywhere")
