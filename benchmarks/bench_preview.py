"""Previews (``senprep_core.preview``): time for 5, 20 and 80 km views on a 1000 x 1000 px screen, S2 and S1.

Products (built once under ``benchmarks/work``): an 87.6 km synthetic L2A tile (B02, B03, B04, B08, SCL; lossless
tiled JPEG2000 like real products, with the R20m / R60m copies) and the full-size 26102 x 16705 px synthetic IW
GRDH of ``bench_s1_grd.py`` (real Rome metadata, VV only, flat DEM). Each view is a square centred in the
product; its preview resolution is the view's size over 1000 px on the run's 10 m lattice (10, 20 and 80 m: about
500, 1000 and 1000 px a side; the grid covers the view's lon/lat box, a little larger). One process per product:
a first preview of another area loads the libraries, then each view is previewed ``--repeat`` times (median
reported; files read before are in the page cache, as when a user pans and zooms). Targets: every view under 2 s,
and the slowest within 2x of the fastest (screen-bound, not area-bound: the 80 km view covers 256 times the 5 km
one). The machine's load average is recorded with the times. Results: benchmarks/results/preview.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "preview"
RESULTS = HERE / "results"
VIEW_KM = (5, 20, 80)
SCREEN_PX = 1000
TARGETS = {"seconds": "< 2", "slowest_over_fastest": "<= 2"}


def s2_product() -> Path:
    """The 87.6 km L2A tile (8760 x 8760 px at 10 m), generated once."""
    from senprep_core.demo.s2 import S2DemoSpec, make_s2_product

    spec = S2DemoSpec(tile_id="30VVH", epsg=32630, ulx=300000.0, uly=6300000.0, size_10m=8760,
                      sensing_time=datetime(2023, 6, 1, 11, 33, 19, tzinfo=timezone.utc), level="L2A",
                      baseline="05.00", nodata_edge=False, bands=("B02", "B03", "B04", "B08"))  # fmt: skip
    return make_s2_product(spec, WORK)


def _square(lon: float, lat: float, km: float, epsg: int) -> tuple[dict[str, Any], tuple[float, ...]]:
    """A km x km square centred on lon/lat in ``epsg``: GeoJSON polygon and (west, south, east, north)."""
    from pyproj import Transformer

    cx, cy = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    h = km * 500.0 - 1.0
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True).transform
    ring = [list(to_ll(x, y)) for x, y in [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h),
                                            (cx - h, cy - h)]]  # fmt: skip
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, (min(lons), min(lats), max(lons), max(lats))


def _case(family: str) -> tuple[dict[str, Any], Path, tuple[float, float], int]:
    """(config, product folder, centre lon/lat, UTM EPSG) of ``family``."""
    if family == "S2":
        from pyproj import Transformer

        folder = s2_product().parent
        centre = Transformer.from_crs(32630, 4326, always_xy=True).transform(300000.0 + 43800.0, 6300000.0 - 43800.0)
        roi, _ = _square(*centre, 5, 32630)
        config = {"name": "bench-preview-s2", "roi": roi, "dates": ["2023-05-01", "2023-06-30"], "mode": "s2_only",
                  "grid": {"resolution": 10, "epsg": 32630},
                  "sentinel2": {"level": "L2A", "bands": ["B02", "B03", "B04", "B08"]}}  # fmt: skip
        return config, folder, (float(centre[0]), float(centre[1])), 32630
    sys.path.insert(0, str(HERE))
    import bench_s1_grd as s1

    folder = s1.build_product("scene").parent
    _, centre = s1.footprint()
    epsg = s1.utm_epsg(*centre)
    config = s1.config_dict("bench-preview-s1", s1.square_roi(*centre, 5), "flat:0", ["sigma0_VV_dB"])
    return config, folder, centre, epsg


def measure(family: str, repeat: int) -> dict[str, Any]:
    """Time each view of ``family`` in this process (run as a subprocess by :func:`main`)."""
    from senprep_core.catalog import open_provider
    from senprep_core.config import parse_config
    from senprep_core.planning import search
    from senprep_core.previews import preview

    data, folder, (lon, lat), epsg = _case(family)
    config = parse_config(data)
    records, _ = search(config, [open_provider(f"local:{folder}")])
    record = records[0]
    t0 = time.perf_counter()
    _, warm_bounds = _square(lon + 0.3, lat + 0.2, 5, epsg)
    preview(config, record, warm_bounds, 60.0)
    first = time.perf_counter() - t0
    views = []
    for km in VIEW_KM:
        _, bounds = _square(lon, lat, km, epsg)
        # the view's own size over the screen, on the run's lattice (its lon/lat box is a little larger)
        resolution = max(config.resolution, km * 1000.0 / SCREEN_PX)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            view = preview(config, record, bounds, resolution)
            times.append(time.perf_counter() - t)
        shown = view.products[0]
        views.append({"view_km": km, "resolution_m": view.grid.resolution, "pixels": [view.grid.width,
                      view.grid.height], "seconds": statistics.median(times), "seconds_all": times,
                      "valid_fraction": float(shown.valid.mean())})  # fmt: skip
    for v in views:
        v["seconds_per_megapixel"] = v["seconds"] / (v["pixels"][0] * v["pixels"][1] / 1e6)
    per_px = [v["seconds_per_megapixel"] for v in views]
    fastest, slowest = min(v["seconds"] for v in views), max(v["seconds"] for v in views)
    return {"product": record.product_id, "first_preview_seconds_with_imports": first, "views": views,
            "load_average_1min_after": os.getloadavg()[0],
            "slowest_over_fastest": slowest / fastest, "under_2_s": slowest < 2.0,
            "per_megapixel_slowest_over_fastest": max(per_px) / min(per_px),
            "within_2x": slowest / fastest <= 2.0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--family", choices=("S2", "S1"), action="append", help="measure only this (repeatable)")
    parser.add_argument("--child", choices=("S2", "S1"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat)))
        return
    results: dict[str, Any] = {}
    for family in args.family or ("S2", "S1"):
        if family == "S2":
            s2_product()  # built before timing
        out = subprocess.run([sys.executable, __file__, "--child", family, "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        results[family] = json.loads(out.stdout.strip().splitlines()[-1])
    record = {"benchmark": "preview", "screen_px": SCREEN_PX, "targets": TARGETS, "results": results,
              "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preview.json").write_text(json.dumps(record, indent=2) + "\n")
    print("| product | view | grid | seconds | s per Mpx |")
    print("|---|---|---|---|---|")
    for family, r in results.items():
        for v in r["views"]:
            px = " × ".join(map(str, v["pixels"]))
            print(f"| {family} | {v['view_km']} km | {px} px at {v['resolution_m']:g} m | {v['seconds']:.2f} | "
                  f"{v['seconds_per_megapixel']:.2f} |")  # fmt: skip
        print(f"| {family} | slowest / fastest | | {r['slowest_over_fastest']:.2f} | "
              f"{r['per_megapixel_slowest_over_fastest']:.2f} |")  # fmt: skip
        print(f"| {family} | load average (1 min) | | {r['load_average_1min_after']:.1f} | |")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
