"""ROI fetch modes vs whole-product download for a 10 x 10 km ROI, over one throttled link.

The full-size synthetic L2A tile of bench_s2_roi.py (10980 x 10980 px at 10 m, real SAFE layout, JP2) is
served on 127.0.0.1 and fetched by ``senprep run`` (a fresh process and a fresh cache each time) in three ways:

  whole     - ``--source cdse:URL --fetch product``: the CDSE-protocol test server sends the zipped SAFE;
  roi-files - ``--source cdse:URL --fetch roi``: the same server, ``Nodes`` downloads of the needed files only;
  cog       - ``--source earth-search:URL``: an Earth Search-style STAC item (rustac) whose band COGs (made
              from the same JP2s, 512 px blocks, DEFLATE; setup, not timed) are read by window over HTTP.

Every byte the servers write (headers and JSON included) goes through one shared link model (the file
server's ``_Link``, default 50 MB/s): the same throttle for every mode, however many connections a mode opens.
For each band set (ML: B02 B03 B04 B08 SCL; all 13 bands) it records the bytes the servers served (their own
counters: file bodies), the bytes on the wire, and the wall time of the whole run; the patch COGs of the three
modes (and of a local run on the SAFE, no network) must be byte-identical, or the benchmark fails.
Per-file mode downloads whole band files, so its saving depends on which bands are needed and on their sizes;
the synthetic tile's compressibility is not a real tile's, so the per-file ratio is also projected from the
file sizes listed in a real L2A manifest.safe (tests' real samples), when present.
Results: benchmarks/results/fetch_modes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "fetch-modes"
RESULTS = HERE / "results"
MB = 1_000_000
USER, PASSWORD = "bench@example.org", "bench-Pa55word"
ML_BANDS = ["B02", "B03", "B04", "B08", "SCL"]
ES_KEYS = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
           "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B11": "swir16", "B12": "swir22",
           "SCL": "scl"}  # fmt: skip
REAL_MANIFEST = (ROOT / ".." / "shared" / "data" / "real-samples" / "stactools-sentinel2"
                 / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE" / "manifest.safe")  # fmt: skip

if str(ROOT) not in sys.path:  # the test servers live in the test tree, the tile in bench_s2_roi
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- one link for every server


class _Wire:
    """Bytes written by every server (headers, JSON and bodies)."""

    def __init__(self) -> None:
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n


class _LinkedWriter:
    """A handler's ``wfile`` whose writes first book their time on the shared link."""

    def __init__(self, raw: Any, link: Any, wire: _Wire, connection: Any = None) -> None:
        self._raw, self._link, self._wire, self._connection = raw, link, wire, connection

    def write(self, data: bytes) -> int:
        if self._connection is not None:  # the per-connection cap (CDSE: 20 MB/s)
            self._connection.send(len(data))
        self._link.send(len(data))
        self._wire.add(len(data))
        return int(self._raw.write(data))

    def __getattr__(self, name: str) -> Any:  # flush, close, closed
        return getattr(self._raw, name)


def put_on_link(httpd: Any, link: Any, wire: _Wire, connection_bps: float | None = None) -> None:
    """Make every response of ``httpd`` (a started test server's ThreadingHTTPServer) go through ``link``,
    and through a cap of ``connection_bps`` per connection."""
    from tests.servers.fileserver import _Link

    base = httpd.RequestHandlerClass

    class Linked(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            cap = _Link(connection_bps) if connection_bps else None
            self.wfile = _LinkedWriter(self.wfile, link, wire, cap)  # type: ignore[has-type]

    httpd.RequestHandlerClass = Linked


# ---------------------------------------------------------------- setup (not timed)


def product_folder(safe: Path) -> Path:
    """A folder holding only the tile (a symlink), for the CDSE server and the local run."""
    folder = WORK / "products"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / safe.name
    if not link.exists():
        link.symlink_to(safe, target_is_directory=True)
    return folder


def native_res(band: str) -> int:
    """A band's native resolution in metres (what Earth Search serves; the SAFE also has coarser copies)."""
    from senprep_core.bands import S2_BANDS

    return S2_BANDS[band].resolution


def make_cogs(meta: Any, bands: list[str]) -> dict[str, Path]:
    """COGs of the bands at their native resolution (cached under benchmarks/work/fetch-modes/cogs)."""
    import rasterio.shutil

    out = {}
    for band in bands:
        files = meta.band_files[band]
        dst = WORK / "cogs" / f"{band}_{native_res(band)}m.tif"
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp.tif")
            src = meta.location.gdal_path(files[native_res(band)])
            rasterio.shutil.copy(src, tmp, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE", PREDICTOR=2,
                                 NUM_THREADS="ALL_CPUS")  # fmt: skip
            tmp.replace(dst)
        out[band] = dst
    return out


def es_item(meta: Any, hrefs: dict[str, str]) -> dict[str, Any]:
    """An Earth Search v1 (sentinel-2-c1-l2a) item of the tile: raster scale / offset, BOA offset not applied."""
    from pyproj import Transformer

    ulx, uly, size = 300000.0, 6300000.0, 109800.0
    to_ll = Transformer.from_crs(meta.epsg, 4326, always_xy=True).transform
    corners = [(ulx, uly - size), (ulx + size, uly - size), (ulx + size, uly), (ulx, uly), (ulx, uly - size)]
    assets: dict[str, Any] = {}
    for band, href in hrefs.items():
        res = native_res(band)
        asset: dict[str, Any] = {
            "href": href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:shape": [int(size) // res] * 2,
            "proj:transform": [res, 0, ulx, 0, -res, uly],
            "roles": ["data"],
        }
        if band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
        assets[ES_KEYS[band]] = asset
    props = {
        "datetime": meta.sensing_time.isoformat().replace("+00:00", "Z"),
        "platform": "sentinel-2b",
        "eo:cloud_cover": meta.cloud_cover,
        "s2:product_uri": f"{meta.product_id}.SAFE",
        "s2:processing_baseline": meta.processing_baseline,
        "proj:epsg": meta.epsg,
        "grid:code": "MGRS-30VVH",
    }
    geometry = {"type": "Polygon", "coordinates": [[list(to_ll(x, y)) for x, y in corners]]}
    return {"type": "Feature", "stac_version": "1.0.0", "id": meta.product_id, "collection": "sentinel-2-c1-l2a",
            "geometry": geometry, "properties": props, "links": [], "assets": assets}  # fmt: skip


def real_projection(layers: tuple[str, ...]) -> dict[str, Any] | None:
    """Whole product vs the files per-file mode fetches, from the sizes in a real L2A manifest.safe."""
    from senprep_core.catalog.cdse_odata import manifest_files, s2_needed

    if not REAL_MANIFEST.is_file():
        return None
    files = manifest_files(REAL_MANIFEST.read_bytes())
    sizes = {f.member: f.size or 0 for f in files}
    needed = s2_needed(list(sizes), "L2A", layers)
    whole = sum(sizes.values())
    fetched = sum(sizes[m] for m in needed) + REAL_MANIFEST.stat().st_size
    return {
        "product": REAL_MANIFEST.parent.name,
        "note": "a real product, partial swath (the swath edge crosses the tile), baseline 04.00",
        "whole_mb": round(whole / MB, 1),
        "roi_files_mb": round(fetched / MB, 1),
        "whole_over_roi_files": round(whole / fetched, 2),
    }


# ---------------------------------------------------------------- the runs


def senprep(args: list[str]) -> float:
    """Run ``senprep run ARGS --quiet`` in a fresh process; its wall time."""
    cmd = [sys.executable, "-m", "senprep_core.cli", "run", *args, "--quiet"]
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"senprep run failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return seconds


def patch_files(outdir: Path) -> dict[str, bytes]:
    return {p.relative_to(outdir).as_posix(): p.read_bytes() for p in sorted((outdir / "patches").rglob("*.tif"))}


def same_patches(what: str, expected: dict[str, bytes], got: dict[str, bytes]) -> None:
    """Fail loudly unless ``got`` holds exactly the patch files of ``expected``, byte for byte."""
    if not expected:
        raise SystemExit(f"{what}: the run wrote no patches")
    if got != expected:
        differ = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        raise SystemExit(f"{what}: the patches differ from the local run's: {differ[:5]} ({len(differ)} files)")


def measure_set(label: str, bands: list[str], ctx: dict[str, Any], link_bps: float, repeat: int) -> dict[str, Any]:
    """The three modes (and the local reference run) for one band set; one result row."""
    from benchmarks.bench_s2_roi import config_dict
    from senprep_core.config import parse_config
    from senprep_core.unit.fetching import s2_layers

    cfg = config_dict(10)
    cfg["name"] = f"fetch-modes-{label}"
    cfg["sentinel2"]["bands"] = bands
    cdse, files, wire = ctx["cdse"], ctx["files"], ctx["wire"]
    with tempfile.TemporaryDirectory(prefix="bench-fetch-modes-", dir=WORK) as tmp:
        work = Path(tmp)
        config = work / "config.json"
        config.write_text(json.dumps(cfg))
        with ctx["stac"](ctx["items"][label]) as stac:
            sources = {
                "local": [f"local:{ctx['products']}"],  # the reference, no network (and a warm-up)
                "whole": [f"cdse:{cdse.url}", "--fetch", "product", "--credentials", str(ctx["credentials"])],
                "roi-files": [f"cdse:{cdse.url}", "--fetch", "roi", "--credentials", str(ctx["credentials"])],
                "cog": [f"earth-search:{stac.url}"],
            }
            modes: dict[str, dict[str, Any]] = {}
            expected: dict[str, bytes] = {}
            for attempt in range(repeat):  # interleaved repeats; each mode keeps its fastest run
                for mode, source in sources.items():
                    served0, wire0 = cdse.total_bytes + files.total_bytes, wire.bytes
                    outdir, cache = work / f"out-{mode}-{attempt}", work / f"cache-{mode}-{attempt}"
                    args = ["--config", str(config), "--outdir", str(outdir), "--source", *source]
                    seconds = senprep([*args, "--cache-dir", str(cache)])
                    served, on_wire = cdse.total_bytes + files.total_bytes - served0, wire.bytes - wire0
                    expected = expected or patch_files(outdir)  # the first (local) run's patches
                    same_patches(f"{label}/{mode}", expected, patch_files(outdir))
                    row = {
                        "seconds": round(seconds, 2),
                        "served_mb": round(served / MB, 2),
                        "wire_mb": round(on_wire / MB, 2),
                        "link_time_s": round(on_wire / link_bps, 2),
                    }
                    print(json.dumps({"bands": label, "mode": mode, **row}), flush=True)
                    best = modes.setdefault(mode, {**row, "all_seconds": []})
                    best["all_seconds"].append(row["seconds"])
                    if row["seconds"] < best["seconds"]:
                        best.update(row)
                    shutil.rmtree(cache, ignore_errors=True)  # keep the disk use of repeats down
    whole, roi, cog = modes["whole"], modes["roi-files"], modes["cog"]
    cog_sizes = sum(p.stat().st_size for b, p in ctx["cogs"].items() if b in bands)
    return {
        "bands": bands,
        "patches": len(expected),
        "patches_identical": True,
        "modes": modes,
        "bytes_whole_over_roi_files": round(whole["served_mb"] / roi["served_mb"], 2),
        "bytes_whole_over_cog": round(whole["served_mb"] / cog["served_mb"], 1),
        "time_whole_over_roi_files": round(whole["seconds"] / roi["seconds"], 2),
        "time_whole_over_cog": round(whole["seconds"] / cog["seconds"], 2),
        "meets_target_cog": whole["served_mb"] >= 10 * cog["served_mb"] and whole["seconds"] >= 10 * cog["seconds"],
        "cog_fraction_of_cog_files_read": round(cog["served_mb"] * MB / cog_sizes, 4),
        "real_manifest_projection": real_projection(s2_layers(parse_config(cfg))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link-mbps", type=float, default=80.0, help="the shared link rate, MB/s")
    parser.add_argument("--conn-mbps", type=float, default=20.0, help="cap per connection, MB/s (CDSE's quota)")
    parser.add_argument("--bands", choices=["ml", "all", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode (the fastest is kept)")
    args = parser.parse_args()

    from benchmarks.bench_s2_roi import BANDS, tile_product
    from senprep_core.s2.metadata import read_s2_metadata
    from tests.servers.cdse_server import CdseServer
    from tests.servers.fileserver import _Link, serve_files
    from tests.servers.stac_server import serve_stac

    sets = {"ml": ML_BANDS, "all": BANDS}
    if args.bands != "both":
        sets = {args.bands: sets[args.bands]}
    link_bps = args.link_mbps * MB
    began = time.perf_counter()
    safe = tile_product()
    meta = read_s2_metadata(safe)
    cogs = make_cogs(meta, sorted({b for bands in sets.values() for b in bands}))
    products = product_folder(safe)
    cdse = CdseServer(WORK / "cdse", username=USER, password=PASSWORD)
    cdse.add_products(products)  # zips the SAFE once (kept under benchmarks/work/fetch-modes/cdse)
    setup_s = time.perf_counter() - began
    credentials = WORK / "credentials.json"
    credentials.write_text(json.dumps({"username": USER, "password": PASSWORD}))
    credentials.chmod(0o600)
    link, wire = _Link(link_bps), _Wire()
    cdse.start()
    try:
        put_on_link(cdse._httpd, link, wire, args.conn_mbps * MB)
        with serve_files(WORK / "cogs") as files:
            put_on_link(files._httpd, link, wire, args.conn_mbps * MB)
            items = {k: [es_item(meta, {b: f"{files.url}/{cogs[b].name}" for b in v})] for k, v in sets.items()}
            ctx = {"cdse": cdse, "files": files, "wire": wire, "stac": serve_stac, "items": items, "cogs": cogs,
                   "credentials": credentials, "products": products}  # fmt: skip
            rows = {label: measure_set(label, bands, ctx, link_bps, args.repeat) for label, bands in sets.items()}
    finally:
        cdse.stop()
    zip_path = next((WORK / "cdse").glob("*.zip"))
    result = {
        "benchmark": "fetch_modes",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "tile": "synthetic L2A 10980 x 10980 at 10 m, JP2, real SAFE layout (bench_s2_roi.tile_product)",
            "roi": "10 x 10 km centred in the tile, 10 m grid, 256 px patches (bench_s2_roi.config_dict(10))",
            "zip_mb": round(zip_path.stat().st_size / MB, 1),
            "link_mb_s": args.link_mbps,
            "per_connection_mb_s": args.conn_mbps,
            "link": "one shared link for the CDSE and file servers and all their connections "
            "(tests/servers/fileserver.py _Link), 127.0.0.1; the STAC API (a few kB of JSON) is not on it",
            "servers": "whole / roi-files: tests/servers/cdse_server.py; cog: tests/servers/fileserver.py + "
            "tests/servers/stac_server.py (rustac)",
            "cogs": "512 px blocks, DEFLATE, predictor 2, overviews; made from the JP2s (setup, not timed)",
            "timing": "wall time of `python -m senprep_core.cli run ... --quiet`, fresh process and fresh cache; "
            f"fastest of {args.repeat} interleaved runs per mode",
            "served_mb": "file bytes counted by the servers; wire_mb adds headers, tokens and JSON",
            "setup_s": round(setup_s, 1),
        },
        "targets": {"bytes_whole_over_cog": ">= 10", "time_whole_over_cog": ">= 10"},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fetch_modes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
