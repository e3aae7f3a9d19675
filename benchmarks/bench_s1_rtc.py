"""Terrain flattening (gamma0T) against sarsen's, on the real Rome GRD metadata and the real Rome DEM.

The product: the real Rome S1B IW GRDH metadata (as in ``bench_s1_grd.py``) with a full-size
synthetic measurement whose DN follow the same smooth "land" pattern as that benchmark's but
without speckle (``smooth``): the two tools sample the image at points up to ~0.3 px apart (their
geolocation differs by that much, see ``s1_grd.json``), and speckle would turn that offset into
pixel-to-pixel noise that has nothing to do with terrain flattening. The speckled product is
measured too (``speckled``), per pixel and averaged over 5 x 5 pixels.

Both tools work on a 5.5 km square ROI over Rome (the facets need ~1 km of DEM around the grid), on
senprep's 10 m UTM grid with senprep's ellipsoidal heights (sarsen gets them as its DEM, so both
see the same facets' heights), without thermal noise removal or speckle filter:
  senprep - ``gamma0T_VV`` (Small 2011: facets oversampled 2x, occlusion, bilinear splatting) and
            ``layover_shadow``, through the whole pipeline (COG patches + STAC);
  sarsen  - ``sarsen.apps.terrain_correction(..., correct_radiometry="gamma_bilinear",
            interp_method="linear")`` (its default grouping of 3 x 3 radar pixels for the areas).
Reported: |gamma0T difference| in dB (median, p90, p99) outside senprep's layover and shadow, the
flagged fraction, each tool's time (fastest of ``--repeat`` runs, each in a fresh process) and
peak RSS, and the time ratio. Target (issue 17): median |difference| <= 0.3 dB.
Results: benchmarks/results/s1_rtc.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_s1_grd as grd  # noqa: E402  (the Rome product, DEM and ROI of the GRD benchmark)

WORK = grd.WORK
RESULTS = HERE / "results"
KINDS = ("smooth", "speckled")
TARGET_MEDIAN_DB = 0.3
ROI_KM = 5.5  # the facets need ~1 km of DEM around the grid: the Rome DEM (8.3 km wide) allows 5.5 km


def smooth_rows(r0: int, n: int) -> np.ndarray:
    """The speckled benchmark product's DN pattern without the speckle (same no-data edges)."""
    line = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
    pixel = np.arange(grd.SAMPLES_, dtype=np.float32)[None, :]
    field = 1.0 + 0.45 * np.sin(line / 310.0 + pixel / 530.0) * np.cos(pixel / 1700.0 - line / 900.0)
    field += 0.25 * np.sign(np.sin(line / 97.0) * np.sin(pixel / 131.0))
    out = np.clip(np.rint(150.0 * field), 1, 65535).astype(np.uint16)
    near = 10 + (np.arange(r0, r0 + n) // 211) % 20
    far = 10 + (np.arange(r0, r0 + n) // 157) % 20
    for i in range(n):
        out[i, : near[i]] = 0
        out[i, grd.SAMPLES_ - far[i] :] = 0
    return out


def build(kind: str) -> Path:
    """The product of ``kind``: ``speckled`` is the GRD benchmark's ``scene``; ``smooth`` is built here once."""
    if kind == "speckled":
        return grd.build_product("scene")
    folder = WORK / "smooth"
    safe = folder / grd.PRODUCT
    stamp = WORK / ".smooth-v1"
    if stamp.exists() and safe.exists():
        return safe
    shutil.rmtree(folder, ignore_errors=True)
    grd._link_metadata(safe, flat_calibration=False)
    measurement = next(p for p in grd.REAL.glob("measurement/*.tiff")).name
    grd._write_measurement(safe / "measurement" / measurement, smooth_rows, "ZSTD")
    stamp.write_text("ok\n")
    return safe


def rtc_config() -> dict[str, Any]:
    cfg = grd.config_dict("bench-rtc", grd.square_roi(*grd.ROME, ROI_KM), str(grd.ROME_DEM), [])
    cfg["sentinel1"].update(bands=["gamma0T_VV", "layover_shadow"], speckle_filter="none", noise_removal=False,
                            resampling="bilinear")  # fmt: skip
    return cfg


def grid_dem() -> Path:
    """senprep's own ellipsoidal heights on the ROI's 10 m grid, as sarsen's DEM (written once)."""
    from senprep_core.config import parse_config
    from senprep_core.s1.dem import load_dem, parse_dem_source

    path = WORK / f"rtc-dem-grid-{ROI_KM:g}km.tif"
    if not path.exists():
        grid = parse_config(rtc_config()).grid()
        dem = load_dem(parse_dem_source(str(grd.ROME_DEM)), grid, margin_px=0, geoid="auto")
        grd._write_dem(path, dem.heights, grid.transform, f"EPSG:{grid.epsg}")
    return path


def mosaic(outdir: Path, grid: Any, count: int) -> np.ndarray:
    """Every band of the patches under ``outdir`` placed back on ``grid``, (count, h, w)."""
    import rasterio

    out = np.full((count, *grid.shape), np.nan, dtype=np.float64)
    for path in sorted(outdir.glob("patches/**/*_S1.tif")):
        with rasterio.open(path) as src:
            col = round((src.transform.c - grid.transform.c) / grid.resolution)
            row = round((grid.transform.f - src.transform.f) / grid.resolution)
            out[:, row : row + src.height, col : col + src.width] = src.read()[:count]
    return out


# ----- children (fresh processes: time and peak RSS) -----------------------------------------------
def child_senprep(kind: str) -> None:
    from senprep_core.config import parse_config
    from senprep_core.pipeline import run
    from senprep_core.unit.fetching import FetchOptions

    product = build(kind)
    outdir = WORK / f"out-rtc-{kind}"
    shutil.rmtree(outdir, ignore_errors=True)
    config = parse_config(rtc_config())
    t0 = time.perf_counter()
    # the measurement is synthetic: its MD5 is not the manifest's
    fetch = FetchOptions(FetchOptions.default().cache_dir, verify=False)
    result = run(config, outdir, sources=[f"local:{product.parent}"], fetch=fetch)
    seconds = time.perf_counter() - t0
    if result.status != "complete" or result.patches_written == 0:
        raise SystemExit(f"senprep run failed: {result.status}")
    np.save(WORK / f"rtc-senprep-{kind}.npy", mosaic(outdir, config.grid(), 2))
    grd.report(seconds, {"grid": list(config.grid().shape)})


def child_sarsen(kind: str) -> None:
    from sarsen import Sentinel1SarProduct, apps

    from senprep_core.config import parse_config

    product = build(kind)
    dem = grid_dem()
    t0 = time.perf_counter()
    sar = Sentinel1SarProduct(str(product), "IW/VV")
    rtc = apps.terrain_correction(sar, str(dem), output_urlpath=str(WORK / f"rtc-sarsen-{kind}.tif"),
                                  correct_radiometry="gamma_bilinear", interp_method="linear")  # fmt: skip
    seconds = time.perf_counter() - t0
    # read back what sarsen wrote (the returned array is lazy: its values would be computed again)
    import rasterio

    with rasterio.open(WORK / f"rtc-sarsen-{kind}.tif") as src:
        values, transform = src.read(1).astype(np.float64), src.transform
    if transform.e > 0:  # rows south-up
        values = values[::-1]
    grid = parse_config(rtc_config()).grid()
    if abs(transform.c - grid.transform.c) > 1e-6 or values.shape != grid.shape:
        raise SystemExit("sarsen's output grid is not senprep's grid")
    np.save(WORK / f"rtc-sarsen-{kind}.npy", values)
    grd.report(seconds, {"grid": list(rtc.shape)})


def child(kind: str, arg: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--arg", arg]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=grd.ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {arg} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ----- comparison -------------------------------------------------------------------------------------
def _stats(d: np.ndarray) -> dict[str, float]:
    d = np.abs(d[np.isfinite(d)])
    return {"median": round(float(np.median(d)), 4), "p90": round(float(np.percentile(d, 90)), 4),
            "p99": round(float(np.percentile(d, 99)), 4), "n": int(d.size)}  # fmt: skip


def _block_mean(a: np.ndarray, k: int = 5) -> np.ndarray:
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return np.asarray(a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3)))


def compare(kind: str) -> dict[str, Any]:
    ours = np.load(WORK / f"rtc-senprep-{kind}.npy")
    theirs = np.load(WORK / f"rtc-sarsen-{kind}.npy")
    gamma, flags = ours[0], ours[1]
    keep = (flags == 0) & np.isfinite(gamma) & np.isfinite(theirs) & (gamma > 0) & (theirs > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = 10 * np.log10(theirs / gamma)
    out: dict[str, Any] = {
        "per_pixel_db": _stats(np.where(keep, diff, np.nan)),
        "signed_median_db": round(float(np.median(diff[keep])), 4),
        "layover_shadow_fraction": round(float(np.mean(flags[np.isfinite(flags)] > 0)), 4),
        "senprep_valid_fraction": round(float(np.isfinite(gamma).mean()), 4),
        "sarsen_valid_fraction": round(float(np.isfinite(theirs).mean()), 4),
    }
    if kind == "speckled":
        ours5 = _block_mean(np.where(keep, gamma, np.nan))
        theirs5 = _block_mean(np.where(keep, theirs, np.nan))
        out["mean_5x5_db"] = _stats(10 * np.log10(theirs5 / ours5))
    return out


def snap_status() -> dict[str, str]:
    """SNAP as a peer: not run here (the SNAP backend refuses gamma0T; SNAP is not installable on our machines)."""
    gpt = shutil.which("gpt")
    reason = (
        "SNAP's gpt is not on PATH" if gpt is None else f"gpt found at {gpt}, but no SNAP comparison is written yet"
    )
    return {"status": "skipped", "reason": reason + "; the SNAP backend does not produce gamma0T"}


def markdown(result: dict[str, Any]) -> str:
    head = f"| gamma0T, Rome {ROI_KM:g} km, real DEM | senprep s | sarsen s | time ratio | median abs diff dB |"
    lines = [head + " p90 | p99 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind, r in result["cases"].items():
        d = r["difference"]["per_pixel_db"]
        lines.append(f"| {kind} DN | {r['senprep']['seconds']} | {r['sarsen']['seconds']} | {r['time_ratio']} | "
                     f"{d['median']} | {d['p90']} | {d['p99']} |")  # fmt: skip
        if "mean_5x5_db" in r["difference"]:
            d = r["difference"]["mean_5x5_db"]
            lines.append(f"| {kind} DN, 5x5 means | | | | {d['median']} | {d['p90']} | {d['p99']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=("senprep", "sarsen"))
    parser.add_argument("--arg", default="smooth")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        {"senprep": child_senprep, "sarsen": child_sarsen}[args.child](args.arg)
        return
    for kind in KINDS:
        build(kind)
    grid_dem()
    cases: dict[str, Any] = {}
    for kind in KINDS:
        runs = {tool: min((child(tool, kind) for _ in range(args.repeat)), key=lambda r: float(r["seconds"]))
                for tool in ("senprep", "sarsen")}  # fmt: skip
        case = {tool: {"seconds": round(r["seconds"], 2), "peak_rss_mb": round(r["peak_rss_mb"], 1)}
                for tool, r in runs.items()}  # fmt: skip
        case["time_ratio"] = round(runs["sarsen"]["seconds"] / runs["senprep"]["seconds"], 1)
        case["difference"] = compare(kind)
        cases[kind] = case
        print(json.dumps({kind: case}))
    result = {
        "benchmark": "s1_rtc",
        "machine": grd.machine(),
        "product": f"{grd.PRODUCT}: real annotation/calibration/noise XML, synthetic measurement (smooth: the "
        "GRD benchmark's DN pattern without speckle; speckled: with ENL 4.4 speckle)",
        "roi": {"km": ROI_KM, "dem": "Rome 1\" DEM (EGM96 -> ellipsoid) on senprep's 10 m grid, given to both"},
        "chain": "no thermal noise removal, no speckle filter, bilinear sampling; senprep gamma0T (facets 2x, "
        "occlusion) through the pipeline; sarsen terrain_correction(correct_radiometry='gamma_bilinear')",
        "target": {"median_abs_diff_db": f"<= {TARGET_MEDIAN_DB}"},
        "cases": cases,
        "met": cases["smooth"]["difference"]["per_pixel_db"]["median"] <= TARGET_MEDIAN_DB,
        "snap": snap_status(),
    }
    result["markdown"] = markdown(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "s1_rtc.json").write_text(json.dumps(result, indent=2) + "\n")
    print(result["markdown"])


if __name__ == "__main__":
    main()
