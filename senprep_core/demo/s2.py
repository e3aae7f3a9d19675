"""Synthetic Sentinel-2 SAFE products with an exactly known ground truth.

:func:`make_s2_product` writes an L1C or L2A product laid out like a real ESA SAFE_COMPACT product
(``MTD_MSIL2A.xml``, ``manifest.safe``, ``GRANULE/L2A_T.._A.._/MTD_TL.xml``,
``IMG_DATA/R10m|R20m|R60m/T<tile>_<datetime>_<band>_<res>m.jp2``, ``QI_DATA`` masks), and
:func:`ground_truth` returns the value a correct pipeline must produce for any canonical band on
any aligned target grid in the tile CRS. Pixel values are analytic functions of map coordinates
(see :mod:`senprep_core.demo.s2_scene`):

- **10 m bands** (B02, B03, B04, B08): textured; truth = ``(DN + offset) / 10000`` at the 10 m
  pixel centres, exact on a 10 m grid aligned with the tile. On a coarser aligned grid the truth is
  the mean of the 10 m truth over the target pixel.
- **20 m / 60 m bands**: planes ``a + b*u + c*v``; truth = the plane at the target pixel centres.
  Bilinear interpolation reproduces a plane exactly away from the no-data edge and the tile border,
  but the files hold quantised DN, so compare with ``atol=1e-4`` (quantisation error <= 0.5e-4).
- **SCL** (20 m) and the **scl_*** masks: the native pixel holding the target pixel centre (nearest).
- **opaque_clouds / cirrus_clouds / snow_ice_areas** (MSK_CLASSI 60 m raster, or the same pixels
  as polygons in MSK_CLOUDS_B00.gml before baseline 04.00): nearest of the 60 m raster.
- **cloud_probability / snow_probability** (20 m, uint8 %): on a finer grid, the bilinear
  interpolant of the 20 m samples (edge-clamped, as GDAL does); on a 20 m or coarser grid, the mean.
- **AOT / WVP**: constants (0.12 and 1.4 cm) where the product holds data.
- **Sun and viewing angles** (``sun_zenith``, ``view_azimuth_mean``, ``view_zenith_B8A``...): the bilinear
  interpolant of MTD_TL's 5 km angle grids (see :mod:`senprep_core.demo.s2_angles`), where the product
  holds data.

Everything is NaN where the product has no data (beyond the no-data cut, outside the tile, and for
interpolated bands where any contributing sample is no-data). Products are written under
``<name>.tmp-<pid>`` and renamed when complete.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from senprep_core.bands import S2_BANDS, S2_REFLECTANCE, SCL_CLASSES, BandKind, canonical_s2_band
from senprep_core.demo import s2_scene as sc
from senprep_core.demo import s2_xml
from senprep_core.demo.publish import publish_product
from senprep_core.demo.s2_angles import DemoAngles, angle_truth, demo_angles
from senprep_core.errors import ConfigError
from senprep_core.geo.grid import TargetGrid

log = logging.getLogger(__name__)

_L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL", "AOT", "WVP")
_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_PLANE_BANDS = ("B01", "B05", "B06", "B07", "B8A", "B09", "B10", "B11", "B12")
_ROW_BLOCK = 1200  # rows of 10 m pixels generated at once (a multiple of 6)


@dataclass(frozen=True)
class S2DemoSpec:
    """What a synthetic product looks like. Same spec -> byte-identical JP2 files."""

    tile_id: str  #: MGRS tile, e.g. "30UVG"; zone must match ``epsg``, band letter >= "N" in the north
    epsg: int  #: 326zz (north) or 327zz (south)
    ulx: float  #: tile upper-left x, a multiple of 60
    uly: float  #: tile upper-left y, a multiple of 60
    size_10m: int  #: tile width/height in 10 m pixels, a multiple of 6 (real tiles: 10980)
    sensing_time: datetime  #: UTC
    level: str = "L2A"  #: "L2A" | "L1C"
    baseline: str = "05.00"  #: "02.14" (no offset, clouds as GML) or >= "04.00" (offset -1000, MSK_CLASSI)
    mission: str = "S2B"
    relative_orbit: int = 80
    seed: int = 0
    cloud_fraction: float = 0.2  #: roughly the share of cloud pixels (opaque + cirrus)
    nodata_edge: bool = True  #: a diagonal no-data cut across the lower-left corner
    bands: tuple[str, ...] = field(default=())  #: empty = all bands of the level

    def __post_init__(self) -> None:
        m = re.fullmatch(r"(\d{2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})", self.tile_id)
        if not m:
            raise ConfigError("tile_id", self.tile_id, "use an MGRS tile id like '30UVG'")
        north = m.group(2) >= "N"
        expected = (32600 if north else 32700) + int(m.group(1))
        if self.epsg != expected:
            raise ConfigError("epsg", self.epsg, f"tile {self.tile_id} lies in EPSG:{expected}")
        if self.ulx % 60 or self.uly % 60:
            raise ConfigError("ulx/uly", (self.ulx, self.uly), "use multiples of 60 so the 10/20/60 m grids align")
        if self.size_10m <= 0 or self.size_10m % 6:
            raise ConfigError("size_10m", self.size_10m, "use a positive multiple of 6 (e.g. 600 or 10980)")
        if self.level not in ("L1C", "L2A"):
            raise ConfigError("level", self.level, "use 'L1C' or 'L2A'")
        if not re.fullmatch(r"\d{2}\.\d{2}", self.baseline):
            raise ConfigError("baseline", self.baseline, "use a processing baseline like '02.14' or '05.00'")
        if self.mission not in ("S2A", "S2B", "S2C"):
            raise ConfigError("mission", self.mission, "use S2A, S2B or S2C")
        if self.sensing_time.tzinfo is not None:
            object.__setattr__(self, "sensing_time", self.sensing_time.astimezone(timezone.utc).replace(tzinfo=None))
        allowed = _L2A_BANDS if self.level == "L2A" else _L1C_BANDS
        if not self.bands:
            object.__setattr__(self, "bands", allowed)
        unknown = [b for b in self.bands if b not in allowed]
        if unknown:
            raise ConfigError("bands", unknown, f"{self.level} products hold {', '.join(allowed)}")

    @property
    def offset(self) -> int:
        """The BOA/RADIO add offset: -1000 from baseline 04.00 on, else 0."""
        return -1000 if self.baseline >= "04.00" else 0

    @property
    def generation_time(self) -> datetime:
        """Processing time: three hours after sensing, on the hour."""
        return (self.sensing_time + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)

    @property
    def datastrip_time(self) -> datetime:
        """Datastrip sensing start (a few seconds before the product time, as in real products)."""
        return self.sensing_time - timedelta(seconds=4)

    @property
    def absolute_orbit(self) -> int:
        """A plausible absolute orbit number (about 14.3 orbits a day since launch)."""
        launch = {"S2A": datetime(2015, 6, 23), "S2B": datetime(2017, 3, 7), "S2C": datetime(2024, 9, 5)}[self.mission]
        return max(1, int((self.sensing_time - launch).total_seconds() / 86400 * 14.3))

    @property
    def product_id(self) -> str:
        """Real naming, e.g. ``S2B_MSIL2A_20200512T113319_N0500_R080_T30VVH_20200512T140000``."""
        return (
            f"{self.mission}_MSI{self.level}_{self.sensing_time:%Y%m%dT%H%M%S}_N{self.baseline.replace('.', '')}"
            f"_R{self.relative_orbit:03d}_T{self.tile_id}_{self.generation_time:%Y%m%dT%H%M%S}"
        )

    @property
    def granule_name(self) -> str:
        """GRANULE sub-folder name, e.g. ``L2A_T30UVG_A027001_20220420T113315``."""
        return f"{self.level}_T{self.tile_id}_A{self.absolute_orbit:06d}_{self.datastrip_time:%Y%m%dT%H%M%S}"

    @property
    def width_m(self) -> float:
        return self.size_10m * 10.0

    def scene(self) -> sc.Scene:
        """The analytic scene of this spec."""
        return sc.make_scene(
            ulx=self.ulx,
            uly=self.uly,
            size_10m=self.size_10m,
            level=self.level,
            seed=self.seed,
            cloud_fraction=self.cloud_fraction,
            nodata_edge=self.nodata_edge,
            plane_bands=_PLANE_BANDS,
        )

    def angles(self) -> DemoAngles:
        """The sun and viewing angle grids of MTD_TL.xml."""
        return demo_angles(self.ulx, self.uly, self.width_m, self.sensing_time)

    def grid(self, resolution: int = 10) -> TargetGrid:
        """The tile's native grid at 10, 20 or 60 m."""
        n = self.size_10m * 10 // resolution
        return TargetGrid(self.epsg, float(resolution), float(self.ulx), float(self.uly), n, n)


def point_targets(spec: S2DemoSpec) -> tuple[tuple[float, float], ...]:
    """Map coordinates (x, y) of the one-pixel bright targets (10 m bands, reflectance 0.95)."""
    return spec.scene().point_targets


# ---------------------------------------------------------------- writing


def _write_jp2(path: Path, data: np.ndarray, spec: S2DemoSpec, resolution: int) -> None:
    """Write a lossless, tiled, georeferenced JPEG2000 (one band, or (bands, H, W))."""
    import rasterio

    arr = data if data.ndim == 3 else data[None]
    count, height, width = arr.shape
    side = max(width, height)
    block = 1024 if side > 1024 else (side + 1) // 2  # tiled like real products (several blocks)
    profile = {
        "driver": "JP2OpenJPEG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "crs": f"EPSG:{spec.epsg}",
        "transform": spec.grid(resolution).transform,
        "QUALITY": 100,
        "REVERSIBLE": "YES",
    }
    if side >= 64:  # the driver refuses explicit block sizes on tiny images
        profile.update(blockxsize=block, blockysize=block)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


def _centres(
    spec: S2DemoSpec, resolution: int, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    n = spec.size_10m * 10 // resolution
    stop = n if stop is None else stop
    xs = spec.ulx + (np.arange(n) + 0.5) * resolution
    ys = spec.uly - (np.arange(start, stop) + 0.5) * resolution
    return xs, ys


def _block_mean(dn: np.ndarray, factor: int) -> np.ndarray:
    h, w = dn.shape
    m = dn.reshape(h // factor, factor, w // factor, factor).astype(np.float64).mean(axis=(1, 3))
    return np.round(m).astype(np.uint16)


def _band_name(spec: S2DemoSpec, band: str, resolution: int) -> str:
    stem = f"T{spec.tile_id}_{spec.sensing_time:%Y%m%dT%H%M%S}_{band}"
    if spec.level == "L1C":
        return f"GRANULE/{spec.granule_name}/IMG_DATA/{stem}"
    return f"GRANULE/{spec.granule_name}/IMG_DATA/R{resolution}m/{stem}_{resolution}m"


def _l2a_resolutions(band: str) -> tuple[int, ...]:
    if band in ("AOT", "WVP"):
        return (10, 20, 60)
    if band == "SCL":
        return (20, 60)
    if band == "B08":
        return (10,)
    if band == "B09":
        return (60,)
    return {10: (10, 20, 60), 20: (20, 60), 60: (20, 60)}[S2_REFLECTANCE[band]]


def _write_bands(spec: S2DemoSpec, scene: sc.Scene, root: Path) -> dict[tuple[int, str], str]:
    """Write every image file except SCL; return {(resolution, band): relative path without extension}."""
    written: dict[tuple[int, str], str] = {}
    for band in spec.bands:
        if band == "SCL":
            continue
        if spec.level == "L1C":
            res = S2_REFLECTANCE[band]
            dn = _dn_rows(spec, scene, band, res)
            rel = _band_name(spec, band, res)
            _write_jp2(root / f"{rel}.jp2", dn, spec, res)
            written[(res, band)] = rel
            continue
        resolutions = _l2a_resolutions(band)
        native = 10 if band in sc.TEN_M_BANDS else None
        base = _dn_rows(spec, scene, band, 10) if native == 10 else None
        for res in resolutions:
            if base is not None:
                dn = base if res == 10 else _block_mean(base, res // 10)
            else:
                dn = _dn_rows(spec, scene, band, res)
            rel = _band_name(spec, band, res)
            _write_jp2(root / f"{rel}.jp2", dn, spec, res)
            written[(res, band)] = rel
    return written


def _dn_rows(spec: S2DemoSpec, scene: sc.Scene, band: str, resolution: int) -> np.ndarray:
    """The DN raster of a band at a resolution, generated in row blocks to bound memory."""
    n = spec.size_10m * 10 // resolution
    out = np.empty((n, n), dtype=np.uint16)
    step = max(6, _ROW_BLOCK * 10 // resolution)
    for start in range(0, n, step):
        xs, ys = _centres(spec, resolution, start, min(n, start + step))
        out[start : start + ys.size] = sc.band_dn(scene, band, xs, ys, spec.offset)
    return out


@dataclass(frozen=True)
class _Masks:
    scl: np.ndarray  # 20 m
    cldprb: np.ndarray  # 20 m
    snwprb: np.ndarray  # 20 m


def _masks_20m(spec: S2DemoSpec, scene: sc.Scene) -> _Masks:
    n = spec.size_10m // 2
    scl = np.empty((n, n), dtype=np.uint8)
    cld = np.empty((n, n), dtype=np.uint8)
    snw = np.empty((n, n), dtype=np.uint8)
    step = _ROW_BLOCK // 2
    for start in range(0, n, step):
        xs, ys = _centres(spec, 20, start, min(n, start + step))
        surf = sc.surface(scene, xs, ys)
        rows = slice(start, start + ys.size)
        scl[rows] = sc.scl(scene, xs, ys, surf)
        cld[rows] = sc.cloud_probability(scene, xs, ys, surf)
        snw[rows] = sc.snow_probability(scene, xs, ys, surf)
    return _Masks(scl, cld, snw)


def _gml_polygons(spec: S2DemoSpec, classi: np.ndarray) -> list[tuple[str, list[list[tuple[float, float]]]]]:
    from rasterio.features import shapes

    polygons: list[tuple[str, list[list[tuple[float, float]]]]] = []
    transform = spec.grid(60).transform
    for layer, mask_type in ((0, "OPAQUE"), (1, "CIRRUS")):
        mask = classi[layer]
        for geom, value in shapes(mask, mask=mask.astype(bool), transform=transform):
            if value:
                rings = [[(float(x), float(y)) for x, y in ring] for ring in geom["coordinates"]]
                polygons.append((mask_type, rings))
    return polygons


def _footprint(spec: S2DemoSpec, scene: sc.Scene) -> tuple[tuple[float, float], ...]:
    from pyproj import Transformer

    x0, y0, w = spec.ulx, spec.uly, spec.width_m
    if spec.nodata_edge:
        (lx, ly), (bx, by) = sc.cut_line(scene)
        ring = [(x0, y0), (x0 + w, y0), (x0 + w, y0 - w), (bx, by), (lx, ly), (x0, y0)]
    else:
        ring = [(x0, y0), (x0 + w, y0), (x0 + w, y0 - w), (x0, y0 - w), (x0, y0)]
    to_lonlat = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    return tuple((round(lon, 9), round(lat, 9)) for lon, lat in (to_lonlat.transform(x, y) for x, y in ring))


def _sha3(path: Path) -> str:
    digest = hashlib.sha3_256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().upper()


def _build_safe(spec: S2DemoSpec, safe: Path) -> None:
    """Write the whole product into ``safe`` (a folder that does not exist yet)."""
    scene = spec.scene()
    granule = f"GRANULE/{spec.granule_name}"
    safe.mkdir(parents=True)
    written = _write_bands(spec, scene, safe)
    masks = _masks_20m(spec, scene)
    qi_files: list[tuple[str, str]] = []
    if spec.level == "L2A":
        if "SCL" in spec.bands:
            for res in (20, 60):
                rel = _band_name(spec, "SCL", res)
                _write_jp2(safe / f"{rel}.jp2", masks.scl if res == 20 else masks.scl[1::3, 1::3], spec, res)
                written[(res, "SCL")] = rel
        for name, arr in (("CLDPRB", masks.cldprb), ("SNWPRB", masks.snwprb)):
            for res in (20, 60):
                rel = f"{granule}/QI_DATA/MSK_{name}_{res}m.jp2"
                _write_jp2(safe / rel, arr if res == 20 else arr[1::3, 1::3], spec, res)
                qi_files.append((f"MSK_{name}", rel))
    order = {b: i for i, b in enumerate((*_L1C_BANDS, "AOT", "WVP", "SCL"))}
    image_files = [written[k] for k in sorted(written, key=lambda k: (k[0] if spec.level == "L2A" else 0, order[k[1]]))]
    xs60, ys60 = _centres(spec, 60)
    classi = sc.classi(scene, xs60, ys60)
    if spec.baseline >= "04.00":
        rel = f"{granule}/QI_DATA/MSK_CLASSI_B00.jp2"
        _write_jp2(safe / rel, classi, spec, 60)
        qi_files.insert(0, ("MSK_CLASSI", rel))
    else:
        rel = f"{granule}/QI_DATA/MSK_CLOUDS_B00.gml"
        qi_files.insert(0, ("MSK_CLOUDS", rel))
    counts = np.bincount(masks.scl.ravel(), minlength=12).astype(np.float64)
    total = counts.sum()
    valid_n = total - counts[0]
    pct = {k: (100.0 * counts[k] / valid_n if valid_n else 0.0) for k in range(1, 12)}
    info = s2_xml.ProductInfo(
        product_id=spec.product_id,
        level=spec.level,
        baseline=spec.baseline,
        mission=spec.mission,
        sensing_time=spec.sensing_time,
        generation_time=spec.generation_time,
        relative_orbit=spec.relative_orbit,
        absolute_orbit=spec.absolute_orbit,
        tile_id=spec.tile_id,
        epsg=spec.epsg,
        ulx=spec.ulx,
        uly=spec.uly,
        size_10m=spec.size_10m,
        granule_dir=granule,
        tile_identifier=_tile_identifier(spec),
        datastrip_identifier=_datastrip_identifier(spec),
        image_files=tuple(image_files),
        qi_files=tuple(qi_files),
        footprint_lonlat=_footprint(spec, scene),
        offset=spec.offset,
        cloud_percentage=pct[8] + pct[9] + pct[10],
        nodata_percentage=100.0 * counts[0] / total,
        class_percentages=pct,
        angles=spec.angles(),
    )
    if spec.baseline < "04.00":
        left, top = spec.ulx, spec.uly
        polys = _gml_polygons(spec, classi)
        pts = [p for _t, rings in polys for p in rings[0]]
        bounds = (
            (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts))
            if pts
            else (left, top, left, top)
        )
        (safe / qi_files[0][1]).write_bytes(s2_xml.clouds_gml(info, polys, bounds))
    _write_preview(spec, safe, written, granule)
    mtd_name = "MTD_MSIL2A.xml" if spec.level == "L2A" else "MTD_MSIL1C.xml"
    (safe / mtd_name).write_bytes(s2_xml.product_metadata(info))
    (safe / granule / "MTD_TL.xml").write_bytes(s2_xml.tile_metadata(info))
    files = sorted(p for p in safe.rglob("*") if p.is_file())
    entries = [(p.relative_to(safe).as_posix(), p.stat().st_size, _sha3(p)) for p in files]
    (safe / "manifest.safe").write_bytes(s2_xml.manifest(info, entries))


#: Resolution of the preview image (PVI), as in real products.
PREVIEW_RESOLUTION = 320


def _write_preview(spec: S2DemoSpec, safe: Path, written: dict[tuple[int, str], str], granule: str) -> None:
    """``QI_DATA/T<tile>_<datetime>_PVI.jp2``: B04/B03/B02 averaged to 320 m, reflectance 0-0.25 -> 0-255."""
    import rasterio
    from rasterio.enums import Resampling

    if not {"B02", "B03", "B04"} <= {b for _r, b in written}:
        return  # a product cut down to other bands has no true-colour preview
    grid = spec.grid(PREVIEW_RESOLUTION)
    planes = []
    for band in ("B04", "B03", "B02"):
        res = min(r for r, b in written if b == band)
        with rasterio.open(safe / f"{written[(res, band)]}.jp2") as src:
            dn = src.read(1, out_shape=grid.shape, resampling=Resampling.average).astype(np.float64)
        planes.append(np.clip((dn + spec.offset) / 10000.0 / 0.25 * 255.0, 0, 255))
    stem = f"T{spec.tile_id}_{spec.sensing_time:%Y%m%dT%H%M%S}"
    _write_jp2(safe / f"{granule}/QI_DATA/{stem}_PVI.jp2", np.stack(planes).astype(np.uint8), spec,
               PREVIEW_RESOLUTION)  # fmt: skip


def _tile_identifier(spec: S2DemoSpec) -> str:
    return (
        f"{spec.mission}_OPER_MSI_{spec.level}_TL_DEMO_{spec.generation_time:%Y%m%dT%H%M%S}"
        f"_A{spec.absolute_orbit:06d}_T{spec.tile_id}_N{spec.baseline}"
    )


def _datastrip_identifier(spec: S2DemoSpec) -> str:
    return (
        f"{spec.mission}_OPER_MSI_{spec.level}_DS_DEMO_{spec.generation_time:%Y%m%dT%H%M%S}"
        f"_S{spec.datastrip_time:%Y%m%dT%H%M%S}_N{spec.baseline}"
    )


def make_s2_product(spec: S2DemoSpec, outdir: Path, as_zip: bool = False) -> Path:
    """Write the product of ``spec`` into ``outdir``; return the ``.SAFE`` folder or the ``.zip``.

    The zip holds ``<product_id>.SAFE/...`` entries (stored, fixed timestamps). When the final
    path already exists nothing is written. Work happens under ``<name>.tmp-<pid>`` and is renamed
    when complete, so an interrupted run never leaves a partial product under the final name.
    """
    return publish_product(outdir, spec.product_id, lambda safe: _build_safe(spec, safe), as_zip, spec.sensing_time)


# ---------------------------------------------------------------- ground truth


def _check_grid(spec: S2DemoSpec, grid: TargetGrid) -> int:
    if grid.epsg != spec.epsg:
        raise ValueError(f"ground truth needs a grid in EPSG:{spec.epsg}, got EPSG:{grid.epsg}")
    res = grid.resolution
    if res < 10 or abs(res / 10 - round(res / 10)) > 1e-9:
        raise ValueError(f"ground truth needs a resolution that is a multiple of 10 m, got {res}")
    for edge in ((grid.left - spec.ulx), (spec.uly - grid.top)):
        if abs(edge / 10 - round(edge / 10)) > 1e-6:
            raise ValueError("ground truth needs a grid aligned on the tile's 10 m pixel edges")
    return round(res)


def _native_centres(spec: S2DemoSpec, coords: np.ndarray, native: int, axis_x: bool) -> np.ndarray:
    """Centre of the native pixel holding each coordinate."""
    if axis_x:
        idx = np.floor((coords - spec.ulx) / native)
        return spec.ulx + (idx + 0.5) * native
    idx = np.floor((spec.uly - coords) / native)
    return spec.uly - (idx + 0.5) * native


def _sub_centres(grid: TargetGrid, res: int, fine: int) -> tuple[np.ndarray, np.ndarray]:
    k = res // fine
    xs, ys = grid.pixel_centres()
    offs = (np.arange(k) + 0.5) * fine - res / 2
    return (xs[:, None] + offs[None, :]).ravel(), (ys[:, None] - offs[None, :]).ravel()


def _block_mean_nan(values: np.ndarray, k: int) -> np.ndarray:
    h, w = values.shape
    return values.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _native_truth(spec: S2DemoSpec, scene: sc.Scene, band: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Truth at native pixel centres (float, NaN in no-data)."""
    ok = sc.valid(scene, xs, ys)
    if band == "cloud_probability":
        vals = sc.cloud_probability(scene, xs, ys).astype(np.float64)
    elif band == "snow_probability":
        vals = sc.snow_probability(scene, xs, ys).astype(np.float64)
    elif band == "SCL" or band in SCL_CLASSES:
        classes = sc.scl(scene, xs, ys)
        vals = classes.astype(np.float64) if band == "SCL" else (classes == SCL_CLASSES[band]).astype(np.float64)
    elif band in ("opaque_clouds", "cirrus_clouds", "snow_ice_areas"):
        layer = {"opaque_clouds": 0, "cirrus_clouds": 1, "snow_ice_areas": 2}[band]
        vals = sc.classi(scene, xs, ys)[layer].astype(np.float64)
    elif band == "AOT":
        vals = np.full(ok.shape, sc.AOT_VALUE)
    elif band == "WVP":
        vals = np.full(ok.shape, sc.WVP_VALUE)
    else:  # 10 m reflectance band
        dn = sc.band_dn(scene, band, xs, ys, spec.offset)
        vals = (dn.astype(np.float64) + spec.offset) / 10000.0
    return np.where(ok, vals, np.nan)


def _bilinear(spec: S2DemoSpec, scene: sc.Scene, band: str, grid: TargetGrid, native: int) -> np.ndarray:
    n = spec.size_10m * 10 // native
    xs, ys = grid.pixel_centres()
    fx = (xs - spec.ulx) / native - 0.5
    fy = (spec.uly - ys) / native - 0.5
    ix0 = np.floor(fx).astype(np.int64)
    iy0 = np.floor(fy).astype(np.int64)
    wx = fx - ix0
    wy = fy - iy0
    xs_n, ys_n = _centres(spec, native)
    cols = np.clip(np.stack([ix0, ix0 + 1]), 0, n - 1)
    rows = np.clip(np.stack([iy0, iy0 + 1]), 0, n - 1)
    used_c = np.unique(cols)
    used_r = np.unique(rows)
    samples = _native_truth(spec, scene, band, xs_n[used_c], ys_n[used_r])
    ci = np.searchsorted(used_c, cols)
    ri = np.searchsorted(used_r, rows)
    out = np.zeros(grid.shape)
    for a, wa in ((0, 1 - wy), (1, wy)):
        for b, wb in ((0, 1 - wx), (1, wx)):
            weight = wa[:, None] * wb[None, :]
            vals = samples[np.ix_(ri[a], ci[b])]
            contrib = np.where(weight > 0, weight * vals, 0.0)
            contrib[(weight > 0) & np.isnan(vals)] = np.nan
            out += contrib
    inside_x = (xs > spec.ulx) & (xs < spec.ulx + spec.width_m)
    inside_y = (ys < spec.uly) & (ys > spec.uly - spec.width_m)
    out[~(inside_y[:, None] & inside_x[None, :])] = np.nan
    return out


def ground_truth(spec: S2DemoSpec, grid: TargetGrid, band: str) -> np.ndarray:
    """The exact expected value of a canonical band on an aligned grid in the tile CRS.

    ``band`` is a canonical (or legacy) band name: a reflectance band (float reflectance), ``SCL``
    (classes), ``scl_*`` / ``opaque_clouds`` / ``cirrus_clouds`` / ``snow_ice_areas`` (0/1 masks),
    ``cloud_probability`` / ``snow_probability`` (%), ``AOT`` / ``WVP``, angles (degrees). ``grid`` must share the
    tile's CRS, have a resolution that is a multiple of 10 m and edges on the tile's 10 m lattice.
    Returns float64 ``grid.shape`` with NaN where the product has no data. See the module docstring
    for the conventions (20/60 m reflectance bands: compare with ``atol=1e-4``).
    """
    band = canonical_s2_band(band, key="band")
    res = _check_grid(spec, grid)
    info = S2_BANDS[band]
    if spec.level not in info.levels or (spec.level == "L1C" and band in ("cloud_probability", "snow_probability")):
        raise ValueError(f"{band} is not in {spec.level} products")
    scene = spec.scene()
    xs, ys = grid.pixel_centres()
    if info.kind == BandKind.ANGLE:
        return np.where(sc.valid(scene, xs, ys), angle_truth(spec.angles(), band, xs, ys), np.nan)
    if band in _PLANE_BANDS:
        values = sc.plane_reflectance(scene, band, xs, ys)
        sx, sy = _sub_centres(grid, res, 10)
        k = res // 10
        ok = sc.valid(scene, sx, sy).astype(np.float64)
        ok_all = _block_mean_nan(ok, k) == 1.0
        return np.where(ok_all, values, np.nan)
    if band in sc.TEN_M_BANDS or band in ("AOT", "WVP"):
        sx, sy = _sub_centres(grid, res, 10)
        return _block_mean_nan(_native_truth(spec, scene, band, sx, sy), res // 10)
    if band in ("cloud_probability", "snow_probability"):
        if res < 20:
            return _bilinear(spec, scene, band, grid, 20)
        if res % 20 == 0:
            sx, sy = _sub_centres(grid, res, 20)
            return _block_mean_nan(_native_truth(spec, scene, band, sx, sy), res // 20)
    native = 60 if band in ("opaque_clouds", "cirrus_clouds", "snow_ice_areas") else 20
    nx = _native_centres(spec, xs, native, axis_x=True)
    ny = _native_centres(spec, ys, native, axis_x=False)
    return _native_truth(spec, scene, band, nx, ny)
