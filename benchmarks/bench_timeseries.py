"""A 20-date Sentinel-2 time series over a 10 km x 10 km ROI, then every sample read back through the ML loader.

Workload: 20 synthetic S2 L2A demo products (20 dates, 8 days apart, cloud 5-60 %) on the 12 km demo
tile; the ROI is a 10 km square centred on that tile (the largest round size it holds); mode
``s2_only``, 128 x 128 px patches, 8 bands (B02 B03 B04 B05 B08 B11 B12 SCL), every patch kept.
The run writes COGs + STAC items (by the units) and the Zarr cube (each unit fills its date in place;
the driver completes it at the end).

Measured in a fresh child process each: (1) the run (total wall time, the serial tail after the last unit
with its share of the run -- target <= 2 % -- and peak RSS);
(2) the loader reading every sample from the Zarr cube and from the COGs via STAC (open + read all
arrays and masks in order, then once more in a shuffled order by index; page cache warm for both; best
of ``--repeat``). Results:
benchmarks/results/timeseries.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "timeseries"
RESULTS = HERE / "results"
N_DATES = 20
ROI_SIZE_M = 10_000
BANDS = ["B02", "B03", "B04", "B05", "B08", "B11", "B12", "SCL"]


def products() -> Path:
    """20 S2 L2A demo products 8 days apart (generated once, cached)."""
    from senprep_core.demo.catalog import demo_specs
    from senprep_core.demo.s2 import make_s2_product

    folder = WORK / "products"
    base = next(s for s in demo_specs() if s.level == "L2A" and s.baseline == "05.00")
    start = datetime(2022, 3, 1, 11, 36, 29)
    for i in range(N_DATES):
        spec = replace(base, sensing_time=start + timedelta(days=8 * i), mission=("S2A", "S2B")[i % 2],
                       seed=500 + i, cloud_fraction=0.05 + 0.55 * ((i * 7) % N_DATES) / (N_DATES - 1))  # fmt: skip
        make_s2_product(spec, folder)
    return folder


def roi() -> dict:
    """A 10 km square centred on the 12 km demo tile (lon/lat GeoJSON)."""
    from pyproj import Transformer

    from senprep_core.demo.catalog import DEMO_EPSG, DEMO_SIZE_10M, DEMO_ULX, DEMO_ULY

    cx, cy = DEMO_ULX + DEMO_SIZE_10M * 5, DEMO_ULY - DEMO_SIZE_10M * 5
    h = ROI_SIZE_M / 2
    to_ll = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform
    corners = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    return {"type": "Polygon", "coordinates": [[list(to_ll(x, y)) for x, y in [*corners, corners[0]]]]}


def config(zarr: bool) -> dict:
    return {
        "name": "timeseries",
        "roi": roi(),
        "dates": [["2022-01-01", "2022-12-31"]],
        "mode": "s2_only",
        "patches": {"size": [128, 128], "overlap": [0, 0]},
        "sentinel2": {"bands": BANDS},
        "output": {"min_valid_fraction": 0.0, "zarr": zarr},
    }


def measure_run() -> dict:
    """Child: run the time series with its cube (``output.zarr: true``); print wall times, the serial tail
    (last unit finished to the run's end: STAC collections and catalog, the cube's completion, the report)
    and peak RSS."""
    from senprep_core.config import parse_config
    from senprep_core.outputs.run_folder import RunFolder
    from senprep_core.pipeline import run

    folder = products()
    out = WORK / "out"
    shutil.rmtree(out, ignore_errors=True)
    marks: dict[str, float] = {}

    def on_event(event: object) -> None:
        name = type(event).__name__
        if name == "UnitStarted":
            marks.setdefault("first_unit", time.perf_counter())
        elif name == "UnitFinished":
            marks["last_unit"] = time.perf_counter()

    t0 = time.perf_counter()
    result = run(parse_config(config(zarr=True)), out, sources=[f"local:{folder}"], callback=on_event)
    total = time.perf_counter() - t0
    if result.status != "complete":
        raise SystemExit(f"run ended {result.status}")
    tail = t0 + total - marks["last_unit"]
    grid = result.plan.grid
    run_folder = RunFolder(out)
    cogs = sum(p.stat().st_size for p in out.glob("patches/*/*.tif"))
    cube = sum(p.stat().st_size for p in run_folder.cube_path.rglob("*") if p.is_file())
    return {
        "seconds_total": total,
        "seconds_head": marks["first_unit"] - t0,
        "seconds_units": marks["last_unit"] - marks["first_unit"],
        "seconds_tail": tail,
        "tail_share": tail / total,
        "units": len(result.results),
        "patches": result.patches_written,
        "roi_grid_px": [grid.height, grid.width],
        "cog_mb": cogs / 2**20,
        "cube_mb": cube / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_read(source: str) -> dict:
    """Child: open the run with the loader and read every sample (arrays and masks)."""
    from senprep_core.dataset import PatchDataset

    t0 = time.perf_counter()
    ds = PatchDataset(WORK / "out", source=source)  # type: ignore[arg-type]
    t_open = time.perf_counter()
    n_bytes = 0
    for sample in ds:
        n_bytes += sum(a.nbytes for a in sample.arrays.values())
    t_read = time.perf_counter()
    order = random.Random(0).sample(range(len(ds)), len(ds))  # a shuffled epoch, as a DataLoader reads it
    for index in order:
        ds[index]
    t_random = time.perf_counter()
    return {"samples": len(ds), "seconds_open": t_open - t0, "seconds_read": t_read - t_open,
            "seconds": t_read - t0, "seconds_read_shuffled": t_random - t_read, "mb_read": n_bytes / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def child(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_run() if args.child[0] == "run" else measure_read(args.child[1])))
        return
    t = time.perf_counter()
    products()
    generate = time.perf_counter() - t
    run_result = child("run")
    reads: dict[str, dict] = {}
    for _ in range(args.repeat):
        for source in ("zarr", "stac"):
            r = child("read", source)
            if source not in reads or r["seconds"] < reads[source]["seconds"]:
                reads[source] = r
    rnd = {k: round(v, 2) if isinstance(v, float) else v for k, v in run_result.items()}
    result = {
        "benchmark": "timeseries",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "when": datetime.now().isoformat(timespec="seconds"),
        "workload": f"{N_DATES} S2 L2A demo products (20 dates), s2_only, 10 km x 10 km ROI centred on the 12 km "
        f"demo tile, 128 px patches, {len(BANDS)} bands, serial executor",
        "products_generated_seconds": round(generate, 1),
        "target": "serial tail <= 2 % of the run, cube included",
        "run": rnd,
        "read_back": {
            s: {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for s, r in reads.items()
        },
        "zarr_speedup_over_cogs": round(reads["stac"]["seconds"] / reads["zarr"]["seconds"], 2),
        "zarr_speedup_read_only": round(reads["stac"]["seconds_read"] / reads["zarr"]["seconds_read"], 2),
        "zarr_speedup_shuffled": round(
            reads["stac"]["seconds_read_shuffled"] / reads["zarr"]["seconds_read_shuffled"], 2
        ),
        "note": "read_back: best of the repeats, each in a fresh process, page cache warm; 'seconds' = open (index "
        "the catalog / cube) + read every sample's arrays and masks in order (the Zarr reader takes side-by-side "
        "patches of a batch in one call); 'seconds_read_shuffled' = then every sample once more by index in a "
        "shuffled order",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "timeseries.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
