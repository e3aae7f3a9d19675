"""Sentinel-2 SAFE -> patches on a full-size synthetic L2A tile, against the I/O limit and odc-stac.

For ROIs of 5, 10 and 20 km it times, each in a fresh subprocess (so peak RSS is per measurement):
  senprep  - the pipeline (plan, ROI-window reads, resampling, masks, COG patches, STAC);
  limit    - a bare rasterio windowed read of exactly the needed windows of the needed bands;
  limit_openjpeg - the same windows through OpenJPEG's area decoding (glymur), which senprep uses for
             local JP2 files: GDAL decodes every 1024 px JP2 tile a window touches, whole, OpenJPEG only
             the window's code-blocks, so senprep can beat the GDAL limit; this row shows by how much;
  odc-stac - odc.stac.load of the same ROI and bands at 10 m from a STAC Item pointing at the same files.
Targets: senprep <= 1.3x limit, faster than odc-stac, peak RSS < 1.5 GB, time linear in ROI area.
Results: benchmarks/results/s2_roi.json (ratios are what to read: this machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
ROI_KM = (5, 10, 20)


def tile_product() -> Path:
    """The full-size synthetic tile (generated once, cached under benchmarks/work)."""
    from senprep_core.demo.s2 import S2DemoSpec, make_s2_product

    spec = S2DemoSpec(
        tile_id="30VVH",
        epsg=32630,
        ulx=300000.0,
        uly=6300000.0,
        size_10m=10980,
        sensing_time=datetime(2023, 6, 1, 11, 33, 19, tzinfo=timezone.utc),
        level="L2A",
        baseline="05.00",
        nodata_edge=False,
    )
    return make_s2_product(spec, WORK)


def roi_geojson(km: int) -> dict:
    """A km x km square centred in the tile, in lon/lat."""
    from pyproj import Transformer

    cx, cy = 300000.0 + 54900.0, 6300000.0 - 54900.0
    h = km * 500.0
    to_ll = Transformer.from_crs(32630, 4326, always_xy=True).transform
    # shrink by 1 m so the projected-back square stays inside km x km pixels
    ring = [to_ll(x, y) for x, y in [(cx - h + 1, cy - h + 1), (cx + h - 1, cy - h + 1), (cx + h - 1, cy + h - 1),
                                     (cx - h + 1, cy + h - 1), (cx - h + 1, cy - h + 1)]]  # fmt: skip
    return {"type": "Polygon", "coordinates": [ring]}


def config_dict(km: int) -> dict:
    return {
        "name": f"bench-{km}km",
        "roi": roi_geojson(km),
        "dates": [["2023-05-01", "2023-06-30"]],
        "mode": "s2_only",
        "grid": {"resolution": 10, "epsg": 32630},
        "patches": {"size": [256, 256], "overlap": [0, 0], "edge": "shift"},
        "sentinel2": {"level": "L2A", "bands": BANDS, "cloud_cover": [0, 100]},
        "output": {"min_valid_fraction": 0.0},
    }


def measure_senprep(km: int, product: Path) -> None:
    import shutil

    import senprep_core.catalog.local  # noqa: F401  (imports are not part of the timed work)
    from senprep_core.config import parse_config
    from senprep_core.pipeline import run
    from senprep_core.s2.jp2 import area_decoding_available

    area_decoding_available()  # imports glymur, as the limits import rasterio before their clocks start

    outdir = WORK / f"out-{km}km"
    shutil.rmtree(outdir, ignore_errors=True)
    config = parse_config(config_dict(km))
    t0 = time.perf_counter()
    result = run(config, outdir, sources=[f"local:{product.parent}"])
    seconds = time.perf_counter() - t0
    if result.status != "complete" or result.patches_written == 0:
        raise SystemExit(f"benchmark run failed: {result.status}")
    report(seconds, {"patches": result.patches_written})


def native_resolution(band: str, files: dict) -> int:
    """The file senprep reads: the band's native resolution when the product has it (as the reader does)."""
    from senprep_core.bands import S2_BANDS

    native = S2_BANDS[band].resolution
    return native if native in files else min(files)


def needed_windows(km: int, product: Path) -> list[tuple[str, object]]:
    """(file, window) pairs: exactly the native-resolution windows senprep needs for the ROI grid."""
    from rasterio.windows import from_bounds

    from senprep_core.config import parse_config
    from senprep_core.s2.metadata import read_s2_metadata

    meta = read_s2_metadata(product)
    grid = parse_config(config_dict(km)).grid()
    out = []
    for band in BANDS:
        files = meta.band_files[band]
        res = native_resolution(band, files)
        geo = meta.geocoding[res].grid(meta.epsg)
        b = grid.bounds
        window = from_bounds(b.left, b.bottom, b.right, b.top, transform=geo.transform).round_offsets().round_lengths()
        out.append((meta.location.gdal_path(files[res]) if meta.location else files[res], window))
    return out


def measure_limit(km: int, product: Path) -> None:
    import rasterio

    pairs = needed_windows(km, product)
    t0 = time.perf_counter()
    total = 0
    for path, window in pairs:
        with rasterio.open(path) as src:
            total += src.read(1, window=window).size
    report(time.perf_counter() - t0, {"pixels": total})


def measure_limit_openjpeg(km: int, product: Path) -> None:
    """The same windows decoded by OpenJPEG's area decoding (glymur), the decoder senprep uses for local JP2."""
    from senprep_core.geo.grid import PixelWindow
    from senprep_core.s2.jp2 import open_area_reader

    pairs = needed_windows(km, product)
    open_area_reader(pairs[0][0])  # the import of glymur, outside the clock
    t0 = time.perf_counter()
    total = 0
    for path, window in pairs:
        reader = open_area_reader(path)
        if reader is None:
            raise SystemExit("OpenJPEG area decoding is not available (glymur + libopenjp2 >= 2.3)")
        w = PixelWindow(int(window.row_off), int(window.col_off), int(window.height), int(window.width))
        total += reader.read(w).size
    report(time.perf_counter() - t0, {"pixels": total})


def stac_item(product: Path):  # type: ignore[no-untyped-def]
    import pystac
    from pystac.extensions.projection import ProjectionExtension

    from senprep_core.s2.metadata import read_s2_metadata

    meta = read_s2_metadata(product)
    item = pystac.Item(meta.product_id, None, None, meta.sensing_time, {})
    for band in BANDS:
        files = meta.band_files[band]
        res = native_resolution(band, files)
        geo = meta.geocoding[res].grid(meta.epsg)
        asset = pystac.Asset(meta.location.gdal_path(files[res]) if meta.location else files[res],
                             media_type="image/jp2", roles=["data"])  # fmt: skip
        item.add_asset(band, asset)
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        proj.epsg, proj.shape, proj.transform = meta.epsg, [geo.height, geo.width], list(geo.transform)[:6]
    return item


def measure_odc(km: int, product: Path) -> None:
    import odc.stac
    from odc.geo.geobox import GeoBox

    from senprep_core.config import parse_config

    grid = parse_config(config_dict(km)).grid()
    item = stac_item(product)
    geobox = GeoBox((grid.height, grid.width), grid.transform, grid.crs)
    t0 = time.perf_counter()
    ds = odc.stac.load([item], bands=BANDS, geobox=geobox, resampling={"*": "bilinear", "SCL": "nearest"})
    ds.load()
    report(time.perf_counter() - t0, {"shape": list(ds["B02"].shape)})


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss would include the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(seconds: float, extra: dict) -> None:
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), **extra}))


def child(kind: str, km: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--km", str(km)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--km", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        kinds = {"senprep": measure_senprep, "limit": measure_limit, "limit_openjpeg": measure_limit_openjpeg,
                 "odc": measure_odc}  # fmt: skip
        kinds[args.child](args.km, tile_product())
        return
    from senprep_core.s2.jp2 import area_decoding_available

    t0 = time.perf_counter()
    tile_product()
    generation = time.perf_counter() - t0
    rows = []
    for km in ROI_KM:
        best: dict[str, dict] = {}
        for _ in range(args.repeat):  # interleaved repeats; keep each tool's fastest
            for kind in ("limit", "limit_openjpeg", "senprep", "odc"):
                r = child(kind, km)
                if kind not in best or r["seconds"] < best[kind]["seconds"]:
                    best[kind] = r
        row = {
            "roi_km": km,
            "senprep_s": round(best["senprep"]["seconds"], 3),
            "limit_s": round(best["limit"]["seconds"], 3),
            "limit_openjpeg_s": round(best["limit_openjpeg"]["seconds"], 3),
            "odc_stac_s": round(best["odc"]["seconds"], 3),
            "ratio_vs_limit": round(best["senprep"]["seconds"] / best["limit"]["seconds"], 3),
            "ratio_vs_limit_openjpeg": round(best["senprep"]["seconds"] / best["limit_openjpeg"]["seconds"], 3),
            "ratio_vs_odc_stac": round(best["senprep"]["seconds"] / best["odc"]["seconds"], 3),
            "senprep_peak_rss_mb": round(best["senprep"]["peak_rss_mb"], 1),
            "odc_stac_peak_rss_mb": round(best["odc"]["peak_rss_mb"], 1),
            "patches": best["senprep"]["patches"],
        }
        rows.append(row)
        print(json.dumps(row))
    base = rows[0]
    for row in rows:
        area_ratio = (row["roi_km"] / base["roi_km"]) ** 2
        row["time_per_area_vs_5km"] = round(row["senprep_s"] / base["senprep_s"] / area_ratio, 3)
    result = {
        "benchmark": "s2_roi",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "tile": "synthetic L2A 10980 x 10980, all bands, JP2 (real SAFE layout)",
        "jp2_decoder": "openjpeg-area" if area_decoding_available() else "gdal",
        "bands": BANDS,
        "generation_s": round(generation, 1),
        "targets": {"ratio_vs_limit": "<= 1.3", "ratio_vs_odc_stac": "< 1", "peak_rss_mb": "< 1536"},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "s2_roi.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
