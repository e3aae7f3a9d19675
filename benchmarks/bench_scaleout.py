"""Scale-out on this machine: the same 8 S2 + S1 pair units serially, with --njobs 2 and on Dask with 2 workers.

Each executor runs the plan in a fresh child process; the Dask case starts a local cluster of 2
single-threaded worker processes. Every unit pairs an S2 L2A product with the S1 GRD acquired ~19 h
later, on one 10 x 10 km grid (S2 reads and resampling, S1 calibration, Lee Sigma and terrain
correction, COG patches of both). Reported: wall time, speed-up, the driver's CPU use and peak RSS of
the driver and of each worker.

A unit uses every core it is given (two band files decoded at once, patch writers, speckle strips),
so the serial run already keeps part of the second core busy and no executor can beat
2 / (serial's cores in use) on 2 cores. Worker processes get ``cores // workers`` threads each
(senprep_core.threads), so they do not oversubscribe the cores. The row "serial, 1 thread"
(SENPREP_THREADS=1) is the one-core reference: speed-up against it, divided by the 2 workers, is the
executors' parallel efficiency (whole run, and the unit phase alone: first unit started to last finished).
Results: benchmarks/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "scaleout"
RESULTS = HERE / "results"
N = 8
WORKERS = {"processes": 2, "dask": 2}  # the executors' workers (parallel efficiency = speed-up / workers)


def products() -> Path:
    """8 S2 L2A and 8 S1 GRD demo products over the demo ROI, each S1 ~19 h after its S2 (generated once)."""
    from senprep_core.demo.catalog import DEMO_DEM, demo_s1_specs, demo_specs
    from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
    from senprep_core.demo.s2 import make_s2_product

    folder = WORK / "pairs"
    s2 = next(s for s in demo_specs() if s.level == "L2A" and s.baseline == "05.00")
    s1 = demo_s1_specs()[0]
    lag = timedelta(hours=18, minutes=48)
    for i in range(N):
        when = s2.sensing_time - timedelta(days=24 * i)
        make_s2_product(replace(s2, sensing_time=when, seed=200 + i), folder)
        make_s1_product(replace(s1, start_time=when + lag, seed=300 + i), folder)
    if not (folder / DEMO_DEM).exists():
        s1_ground_truth(s1).write_dem(folder / DEMO_DEM)
    return folder


def roi() -> dict:
    """A 10 km x 10 km square around the demo ROI's centre (inside the S2 demo tile and the S1 scenes)."""
    from pyproj import Transformer

    from senprep_core.demo.catalog import DEMO_EPSG, DEMO_ROI_BOUNDS_UTM

    left, bottom, right, top = DEMO_ROI_BOUNDS_UTM
    cx, cy = (left + right) / 2, (bottom + top) / 2
    to_ll = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform
    h = 5000
    corners = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    ring = [list(to_ll(x, y)) for x, y in [*corners, corners[0]]]
    return {"type": "Polygon", "coordinates": [ring]}


def configs(folder: Path) -> list[dict]:
    from senprep_core.demo.catalog import demo_s1_config_dict

    s1 = demo_s1_config_dict(folder)["sentinel1"]
    pairs = {
        "name": "scale-pairs",
        "roi": roi(),
        "dates": [["2020-01-01", "2024-12-31"]],
        "mode": "s2_with_closest_s1",
        "pairing": {"max_days": 3},
        "patches": {"size": [64, 64], "overlap": [0, 0]},
        "sentinel2": {"bands": ["B02", "B03", "B04", "B05", "B08", "B11", "B12", "SCL"]},
        "sentinel1": s1,
        "output": {"min_valid_fraction": 0.0},
    }
    return [pairs]


def measure(kind: str) -> None:
    from senprep_core.config import parse_config
    from senprep_core.executors import DaskExecutor, ProcessExecutor, SerialExecutor
    from senprep_core.pipeline import run

    folder = products()
    executor = {"serial": SerialExecutor, "serial_1_thread": SerialExecutor, "processes": lambda: ProcessExecutor(2),
                "dask": lambda: DaskExecutor(None, 2)}[kind]()  # fmt: skip
    out = WORK / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    worker_rss: list[float] = [0.0]
    stop = threading.Event()

    def sample() -> None:  # peak RSS of any descendant process (worker processes, Dask nannies/workers)
        import psutil

        me = psutil.Process()
        while not stop.wait(0.2):
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    worker_rss[0] = max(worker_rss[0], proc.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = os.times()
    phase: dict[str, float] = {}

    def on_event(event: object) -> None:  # the unit phase: first unit started .. last unit finished
        name, now = type(event).__name__, time.perf_counter()
        if name == "UnitStarted":
            phase.setdefault("first_start", now)
        elif name == "UnitFinished":
            phase["last_finish"] = now

    t0 = time.perf_counter()
    units = 0
    for data in configs(folder):
        result = run(parse_config(data), out / data["name"], sources=[f"local:{folder}"], executor=executor,
                     callback=on_event)  # fmt: skip
        if result.status != "complete":
            raise SystemExit(f"{kind}: run {data['name']} ended {result.status}")
        units += len(result.results)
    seconds = time.perf_counter() - t0
    executor.close()
    stop.set()
    cpu1 = os.times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    units_seconds = phase["last_finish"] - phase["first_start"]
    print(json.dumps({"seconds": seconds, "units_seconds": units_seconds, "units": units,
                      "cpu_cores_used": cpu / seconds,
                      "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_peak_rss_mb": worker_rss[0] if not kind.startswith("serial") else None}))  # fmt: skip


def child(kind: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind]
    env = {k: v for k, v in os.environ.items() if k not in ("SENPREP_THREADS", "GDAL_NUM_THREADS")}
    if kind == "serial_1_thread":
        env.update(SENPREP_THREADS="1", GDAL_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.child:
        measure(args.child)
        return
    products()
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for kind in ("serial", "serial_1_thread", "processes", "dask"):
            r = child(kind)
            if kind not in best or r["seconds"] < best[kind]["seconds"]:
                best[kind] = r
    serial, single = best["serial"]["seconds"], best["serial_1_thread"]["seconds"]
    rows = [
        {
            "executor": kind,
            "seconds": round(r["seconds"], 2),
            "speedup": round(serial / r["seconds"], 2),
            "speedup_vs_1_thread": round(single / r["seconds"], 2),
            "parallel_efficiency_vs_1_thread": round(single / r["seconds"] / WORKERS.get(kind, 1), 3),
            "units_parallel_efficiency_vs_1_thread": round(
                best["serial_1_thread"]["units_seconds"] / r["units_seconds"] / WORKERS.get(kind, 1), 3
            ),
            "units_seconds": round(r["units_seconds"], 2),
            "units_speedup": round(best["serial"]["units_seconds"] / r["units_seconds"], 2),
            "units": r["units"],
            "driver_cpu_cores": round(r["cpu_cores_used"], 2),
            "driver_peak_rss_mb": round(r["driver_peak_rss_mb"], 1),
            "worker_peak_rss_mb": None if r["worker_peak_rss_mb"] is None else round(r["worker_peak_rss_mb"], 1),
        }
        for kind, r in best.items()
    ]
    result = {
        "benchmark": "scaleout",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": datetime.now().isoformat(timespec="seconds"),
        "workload": f"{N} S2 L2A + S1 GRD pair units (s2_with_closest_s1, 10 x 10 km) from demo products; "
        f"best of {args.repeat} runs per executor",
        "target": "parallel efficiency >= 85 % for --njobs 2 and Dask with 2 workers against the one-thread serial "
        "run (speed-up over it / 2 workers); the units_ figures leave out the run's head and tail",
        "attainable_speedup_vs_serial": round(2 / best["serial"]["cpu_cores_used"], 2),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaleout.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
