"""A scale model of a large run: 200, 1,000 and 2,000 small units on a Dask cluster of 2 workers, and what
the driver does alone.

Workload: tiny synthetic S2 L2A products (a 1.2 km tile, 3 bands, one every 6 hours) over a 1 km ROI
inside them, one a day; mode ``s2_only``, 25 x 25 px patches at 10 m (16 per unit), COGs + STAC items + the Zarr
cube. Each size runs in a fresh driver process against a Dask scheduler and two single-threaded
workers started as separate processes (``dask scheduler`` / ``dask worker``), as on a cluster where the
scheduler is not the driver.

Measured per size, in the driver: CPU time (user + system) in total, during planning, while units run
and after the last unit (the serial tail), per unit and per patch; peak RSS; the wall-clock serial
tail (last unit finished to the run's end) and serial head (start to the first unit dispatched). The
scheduler's CPU time is reported beside it.

Projection (Amdahl): the serial part is head + tail (nothing else waits on the driver); the parallel part
is the sum of the units' own times. With N workers the run takes ``serial + max(work / N, units x
driver CPU per unit)``: the second term is the rate at which one driver can dispatch and record units,
the bound that no number of workers lifts. Results: benchmarks/results/scale_model.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "scale_model"
RESULTS = HERE / "results"
SIZES = (200, 1000, 2000)
TILE_PX = 120  # a 1.2 km tile
ROI_M = 1000
PATCH_PX = 25
START = datetime(2022, 1, 1, 10, 30)
STEP = timedelta(days=1)  # one acquisition a day (two a day of one orbit would be one acquisition)
WORKERS = ("--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--preload", "senprep_core.unit.runner")


def products(n: int) -> Path:
    """``n`` tiny S2 L2A demo products, one a day (generated once, cached)."""
    from senprep_core.demo.catalog import demo_specs
    from senprep_core.demo.s2 import make_s2_product

    folder = WORK / "products"
    base = next(s for s in demo_specs() if s.level == "L2A" and s.baseline == "05.00")
    with _encode_once():
        for i in range(n):
            spec = replace(base, size_10m=TILE_PX, sensing_time=START + i * STEP, seed=1000,
                           mission=("S2A", "S2B")[i % 2], bands=("B04", "B08", "SCL"), nodata_edge=False)  # fmt: skip
            make_s2_product(spec, folder)
    return folder


@contextlib.contextmanager
def _encode_once() -> Iterator[None]:
    """While generating: each kind of image (band, mask, preview) is encoded once and copied into the other
    products (the same pixels on every date), which makes thousands of products affordable. The products'
    metadata and manifests are written as usual, so each is a complete, verifiable product."""
    import senprep_core.demo.s2 as demo_s2

    original = demo_s2._write_jp2
    done: dict[str, bytes] = {}

    def write(path: Path, data: Any, spec: Any, resolution: int) -> None:
        key = f"{re.sub(r'[0-9]{8}T[0-9]{6}', '', path.name)} {data.shape} {resolution}"
        if key in done:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(done[key])
            return
        original(path, data, spec, resolution)
        done[key] = path.read_bytes()

    demo_s2._write_jp2 = write
    try:
        yield
    finally:
        demo_s2._write_jp2 = original


def config(n: int) -> dict[str, Any]:
    """The run of the first ``n`` products: a 600 m square in the tile's middle."""
    from pyproj import Transformer

    from senprep_core.demo.catalog import DEMO_EPSG, DEMO_ULX, DEMO_ULY

    cx, cy = DEMO_ULX + TILE_PX * 5, DEMO_ULY - TILE_PX * 5
    h = ROI_M / 2
    to_ll = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform
    corners = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    end = START + (n - 1) * STEP
    return {
        "name": f"scale-model-{n}",
        "roi": {"type": "Polygon", "coordinates": [[list(to_ll(x, y)) for x, y in [*corners, corners[0]]]]},
        "dates": [[START.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")]],
        "mode": "s2_only",
        "grid": {"epsg": DEMO_EPSG, "resolution": 10},
        "patches": {"size": [PATCH_PX, PATCH_PX], "overlap": [0, 0]},
        "sentinel2": {"bands": ["B04", "B08", "SCL"]},
        "output": {"min_valid_fraction": 0.0, "zarr": True, "stac": True},
    }


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def measure(n: int, address: str) -> dict[str, Any]:
    """Child: one run of ``n`` units on the cluster at ``address``; the driver's times, CPU and memory."""
    from senprep_core.config import parse_config
    from senprep_core.executors import DaskExecutor
    from senprep_core.pipeline import run

    folder = products(n)
    out = WORK / f"out-{n}"
    shutil.rmtree(out, ignore_errors=True)
    marks: dict[str, float] = {}

    def on_event(event: object) -> None:
        name, now, cpu = type(event).__name__, time.perf_counter(), _cpu()
        if name == "RunStarted":
            marks["started"], marks["cpu_started"] = now, cpu
        elif name == "UnitStarted":
            marks.setdefault("first_unit", now)
        elif name == "UnitFinished":
            marks["last_unit"], marks["cpu_last_unit"] = now, cpu

    executor = DaskExecutor(address)
    c0 = time.perf_counter()
    executor.start()  # the client connects once per session (a notebook keeps it)
    connect = time.perf_counter() - c0
    cpu0, t0 = _cpu(), time.perf_counter()
    result = run(parse_config(config(n)), out, sources=[f"local:{folder}"], executor=executor, callback=on_event)
    t1, cpu1 = time.perf_counter(), _cpu()
    executor.close()
    if result.status != "complete" or len(result.results) != len(result.plan.units):
        raise SystemExit(f"run of {n} units ended {result.status} with {len(result.results)} units")
    n = len(result.results)
    patches = result.patches_written
    work = sum(r.seconds or 0.0 for r in result.results)
    return {
        "units": n,
        "patches": patches,
        "seconds": t1 - t0,
        "connect_seconds": connect,
        "head_seconds": marks["first_unit"] - t0,
        "tail_seconds": t1 - marks["last_unit"],
        "units_work_seconds": work,
        "driver_cpu_seconds": cpu1 - cpu0,
        "driver_cpu_planning_seconds": marks["cpu_started"] - cpu0,
        "driver_cpu_during_units_seconds": marks["cpu_last_unit"] - marks["cpu_started"],
        "driver_cpu_tail_seconds": cpu1 - marks["cpu_last_unit"],
        "driver_cpu_ms_per_unit": 1000 * (cpu1 - cpu0) / n,
        "driver_cpu_ms_per_patch": 1000 * (cpu1 - cpu0) / patches,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cube_time_steps": _cube_times(out),
    }


def _cube_times(out: Path) -> int:
    import xarray as xr

    return int(xr.open_zarr(out / "cube.zarr", group="S2").sizes["time"])


def project(row: dict[str, Any], workers: int) -> float:
    """Projected speed-up on ``workers`` workers over one worker (see the module docstring)."""
    serial = row["head_seconds"] + row["tail_seconds"]
    work = row["units_work_seconds"]
    dispatch = row["driver_cpu_during_units_seconds"]  # the driver's work per unit, for every unit
    one = serial + max(work, dispatch)
    return one / (serial + max(work / workers, dispatch))


def amdahl(serial_fraction: float, workers: int) -> float:
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / workers)


class Cluster:
    """A Dask scheduler and two single-threaded workers, each its own process on 127.0.0.1."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        dask = str(Path(sys.executable).with_name("dask"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                           "--no-dashboard"], **quiet)  # fmt: skip
        self.address = f"tcp://127.0.0.1:{self.port}"
        time.sleep(2)
        self.workers = [subprocess.Popen([dask, "worker", self.address, *WORKERS], env={**os.environ,
                        "SENPREP_THREADS": "1"}, **quiet) for _ in range(2)]  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=300)

    def scheduler_cpu(self) -> float:
        import psutil

        t = psutil.Process(self.scheduler.pid).cpu_times()
        return float(t.user + t.system)

    def close(self) -> None:
        for proc in (*self.workers, self.scheduler):
            proc.terminate()
        for proc in (*self.workers, self.scheduler):
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("N", "ADDRESS"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    t = time.perf_counter()
    products(max(args.sizes))
    generated = time.perf_counter() - t
    cluster = Cluster()
    rows = []
    try:
        for n in args.sizes:
            cpu0 = cluster.scheduler_cpu()
            cmd = [sys.executable, __file__, "--child", str(n), cluster.address]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = json.loads(out)
            row["scheduler_cpu_seconds"] = cluster.scheduler_cpu() - cpu0
            row["serial_fraction"] = (row["head_seconds"] + row["tail_seconds"]) / (
                row["head_seconds"] + row["tail_seconds"] + row["units_work_seconds"]
            )
            alone = row["driver_cpu_planning_seconds"] + row["driver_cpu_tail_seconds"]  # the driver's CPU alone
            row["serial_fraction_cpu"] = alone / (alone + row["units_work_seconds"])
            row["projected_speedup"] = {str(w): round(project(row, w), 1) for w in (10, 100, 1000)}
            row["projected_speedup_cpu"] = {str(w): round(amdahl(row["serial_fraction_cpu"], w), 1)
                                            for w in (10, 100, 1000)}  # fmt: skip
            rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        cluster.close()
    rss = [r["driver_peak_rss_mb"] for r in rows]
    result = {
        "benchmark": "scale_model",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": datetime.now().isoformat(timespec="seconds"),
        "workload": f"tiny S2 L2A demo products ({TILE_PX * 10} m tile, 3 bands), s2_only over a {ROI_M} m ROI, "
        f"{PATCH_PX} px patches, COG + STAC + Zarr cube; Dask scheduler and 2 single-threaded workers as "
        "separate processes",
        "products_generated_seconds": round(generated, 1),
        "targets": {
            "driver_cpu_ms_per_patch": "<= 2",
            "driver_peak_rss_spread": "within +-10 % from 200 to 2000 units",
            "projected_speedup_100_workers": ">= 80",
        },
        "rows": rows,
        "driver_peak_rss_spread": round(max(rss) / min(rss) - 1, 3) if rss else None,
        "note": "serial fraction = (head + tail) / (head + tail + the units' own seconds), in wall seconds; "
        "projected speed-up on N workers = one-worker time / (head + tail + max(work / N, the driver's CPU while "
        "units run)). serial_fraction_cpu uses the driver's CPU seconds alone (planning and tail) instead of wall "
        "seconds, which a loaded machine inflates (the benchmark runs niced); projected_speedup_cpu is Amdahl's "
        "law with it. Workers preload senprep_core.unit.runner, as a deployment would; the client connects "
        "before the run (connect_seconds).",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_model.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
