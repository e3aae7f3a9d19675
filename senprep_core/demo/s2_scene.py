"""Analytic scene of a synthetic Sentinel-2 tile: every pixel value is a function of map coordinates.

The writer (:mod:`senprep_core.demo.s2`) and :func:`senprep_core.demo.s2.ground_truth` both call the
functions here, so the files and the truth cannot drift apart. All functions take 1-D arrays of
pixel-centre coordinates ``xs`` (columns, ascending) and ``ys`` (rows, descending) in the tile CRS
and return 2-D ``(len(ys), len(xs))`` arrays.

Scene content:

- **No-data corner**: a straight cut across the lower-left corner; a pixel is no-data when the
  centre of the 60 m cell holding it lies on the far side of the cut, so all bands and resolutions
  share one valid area (a union of 60 m cells).
- **Background**: 250 m fields, vegetated (SCL 4) or not (SCL 5) by a hash of the field index.
- **Water** (SCL 6): an elliptic lake; **snow** (SCL 11): a small disc.
- **Clouds**: opaque blobs (score ``1 - d²/r²``; SCL 9 where the score > 0.5, else 8), thin cirrus
  blobs (SCL 10) and cloud shadows (SCL 3) = the opaque blobs displaced by a fixed vector.
- **10 m bands** (B02, B03, B04, B08): per-class reflectance + field variation + a gradient + a
  sinusoidal texture, brightened under clouds, plus a few one-pixel bright targets.
- **20 m / 60 m bands**: a plane ``a + b*u + c*v`` of the normalised tile coordinates, so bilinear
  interpolation reproduces them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Reflectance of the 10 m bands per surface: (B02, B03, B04, B08).
_TEN_M_BANDS = ("B02", "B03", "B04", "B08")
_VEG = (0.03, 0.06, 0.04, 0.35)
_SOIL = (0.08, 0.10, 0.12, 0.22)
_WATER = (0.02, 0.03, 0.02, 0.01)
_SNOW = (0.80, 0.80, 0.78, 0.70)
_L1C_HAZE = (0.04, 0.03, 0.02, 0.01)
_FIELD_SIZE = 250.0
_CUT_FRACTION = 0.35
_AOT_DN = 120
_WVP_DN = 1400
POINT_TARGET_REFLECTANCE = 0.95


@dataclass(frozen=True)
class Blob:
    """A disc in map coordinates: centre and radius (metres)."""

    cx: float
    cy: float
    r: float


@dataclass(frozen=True)
class Scene:
    """The analytic description of one synthetic tile (derived from a spec and its seed)."""

    ulx: float
    uly: float
    width_m: float
    level: str
    opaque: tuple[Blob, ...]
    cirrus: tuple[Blob, ...]
    shadow_shift: tuple[float, float]
    lake: tuple[float, float, float, float]  # cx, cy, rx, ry
    snow: Blob
    nodata_edge: bool
    seed: int
    point_targets: tuple[tuple[float, float], ...]  # 10 m pixel centres (x, y)
    planes: dict[str, tuple[float, float, float]]  # band -> a, b, c (reflectance = a + b*u + c*v)

    def u(self, xs: np.ndarray) -> np.ndarray:
        """Normalised column coordinate (0 at the left edge, 1 at the right edge)."""
        return (np.asarray(xs, dtype=np.float64) - self.ulx) / self.width_m

    def v(self, ys: np.ndarray) -> np.ndarray:
        """Normalised row coordinate (0 at the top edge, 1 at the bottom edge)."""
        return (self.uly - np.asarray(ys, dtype=np.float64)) / self.width_m


def _blobs(rng: np.random.Generator, count: int, area: float, width: float, ulx: float, uly: float) -> tuple[Blob, ...]:
    if count == 0 or area <= 0:
        return ()
    centres = rng.uniform(0.05, 0.95, size=(count, 2))
    weights = rng.uniform(0.5, 1.5, size=count)
    scale = math.sqrt(area / (math.pi * float(np.sum(weights**2))))
    return tuple(
        Blob(ulx + float(c[0]) * width, uly - float(c[1]) * width, float(w) * scale)
        for c, w in zip(centres, weights, strict=True)
    )


def make_scene(
    *,
    ulx: float,
    uly: float,
    size_10m: int,
    level: str,
    seed: int,
    cloud_fraction: float,
    nodata_edge: bool,
    plane_bands: tuple[str, ...],
) -> Scene:
    """Draw the deterministic scene of a tile from its seed."""
    width = size_10m * 10.0
    rng = np.random.default_rng(seed)
    frac = min(max(cloud_fraction, 0.0), 1.0)
    overlap = 1.15  # blobs overlap: ask for a bit more area than the target share
    opaque = _blobs(rng, 8, 0.75 * frac * overlap * width * width, width, ulx, uly)
    cirrus = _blobs(rng, 3, 0.25 * frac * overlap * width * width, width, ulx, uly)
    r_mean = float(np.mean([b.r for b in opaque])) if opaque else 0.0
    shadow_shift = (0.7 * r_mean, -0.7 * r_mean)
    lake = (ulx + 0.72 * width, uly - 0.35 * width, 0.09 * width, 0.05 * width)
    snow = Blob(ulx + 0.88 * width, uly - 0.12 * width, 0.025 * width)
    # one-pixel bright targets at 10 m pixel centres
    targets = []
    for fu, fv in ((0.1, 0.1), (0.5, 0.5), (0.9, 0.3), (0.3, 0.8), (0.6, 0.9)):
        col = int(fu * size_10m)
        row = int(fv * size_10m)
        targets.append((ulx + (col + 0.5) * 10.0, uly - (row + 0.5) * 10.0))
    planes: dict[str, tuple[float, float, float]] = {}
    prng = np.random.default_rng(10_000 + seed)
    for i, band in enumerate(plane_bands):
        a = 0.06 + 0.025 * i + float(prng.uniform(0.0, 0.05))
        b = float(prng.uniform(-0.05, 0.05))
        c = float(prng.uniform(-0.05, 0.05))
        planes[band] = (a, b, c)
    return Scene(
        ulx=float(ulx),
        uly=float(uly),
        width_m=width,
        level=level,
        opaque=opaque,
        cirrus=cirrus,
        shadow_shift=shadow_shift,
        lake=lake,
        snow=snow,
        nodata_edge=nodata_edge,
        seed=seed,
        point_targets=tuple(targets),
        planes=planes,
    )


# ---------------------------------------------------------------- fields


def valid(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """True where the pixel holds data: inside the tile and not beyond the no-data cut."""
    u = scene.u(xs)
    v = scene.v(ys)
    inside = ((u >= 0) & (u < 1))[None, :] & ((v >= 0) & (v < 1))[:, None]
    if not scene.nodata_edge:
        return inside
    cell = 60.0 / scene.width_m
    uc = (np.floor(u / cell) + 0.5) * cell
    vc = (np.floor(v / cell) + 0.5) * cell
    return inside & ((uc[None, :] + (1.0 - vc)[:, None]) >= _CUT_FRACTION)


def cut_line(scene: Scene) -> tuple[tuple[float, float], tuple[float, float]]:
    """The two points (map x, y) where the no-data cut meets the left and bottom tile edges."""
    w = scene.width_m
    left = (scene.ulx, scene.uly - (1.0 - _CUT_FRACTION) * w)
    bottom = (scene.ulx + _CUT_FRACTION * w, scene.uly - w)
    return left, bottom


def blob_score(
    blobs: tuple[Blob, ...], xs: np.ndarray, ys: np.ndarray, shift: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """Max over blobs of ``1 - d²/r²`` (> 0 inside a blob, -1 far from all blobs)."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    out = np.full((ys.size, xs.size), -1.0)
    for b in blobs:
        cx, cy = b.cx + shift[0], b.cy + shift[1]
        c0, c1 = np.searchsorted(xs, [cx - b.r, cx + b.r])
        rows = np.nonzero(np.abs(ys - cy) < b.r)[0]
        if c1 <= c0 or rows.size == 0:
            continue
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        dx2 = (xs[c0:c1] - cx) ** 2
        dy2 = (ys[r0:r1] - cy) ** 2
        sub = 1.0 - (dy2[:, None] + dx2[None, :]) / (b.r * b.r)
        np.maximum(out[r0:r1, c0:c1], sub, out=out[r0:r1, c0:c1])
    return out


@dataclass(frozen=True)
class Surface:
    """Per-pixel surface state at some pixel centres."""

    valid: np.ndarray
    opaque: np.ndarray  # opaque cloud score (> 0 inside)
    cirrus: np.ndarray  # bool
    shadow: np.ndarray  # bool
    snow: np.ndarray  # bool
    water: np.ndarray  # bool
    field: np.ndarray  # field hash in [0, 1)


def surface(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> Surface:
    """Evaluate every analytic layer at the given pixel centres."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    ok = valid(scene, xs, ys)
    opaque = blob_score(scene.opaque, xs, ys)
    is_cloud = opaque > 0
    cirrus = (blob_score(scene.cirrus, xs, ys) > 0) & ~is_cloud
    shadow = (blob_score(scene.opaque, xs, ys, scene.shadow_shift) > 0) & ~is_cloud & ~cirrus
    sx, sy, sr = scene.snow.cx, scene.snow.cy, scene.snow.r
    snow = (((xs - sx) ** 2)[None, :] + ((ys - sy) ** 2)[:, None]) < sr * sr
    lx, ly, rx, ry = scene.lake
    water = ((((xs - lx) / rx) ** 2)[None, :] + (((ys - ly) / ry) ** 2)[:, None]) < 1.0
    ix = np.floor((xs - scene.ulx) / _FIELD_SIZE).astype(np.int64)
    iy = np.floor((scene.uly - ys) / _FIELD_SIZE).astype(np.int64)
    h = (ix[None, :] * 92837111) ^ (iy[:, None] * 689287499) ^ (scene.seed * 283923481 + 12345)
    field = (h & 0x7FFFFFFF) % 9973 / 9973.0
    return Surface(ok, opaque, cirrus, shadow, snow & ~water, water, field)


def scl(scene: Scene, xs: np.ndarray, ys: np.ndarray, surf: Surface | None = None) -> np.ndarray:
    """Scene classification (uint8, 0 in no-data) at the given pixel centres."""
    s = surf if surf is not None else surface(scene, xs, ys)
    out = np.where(s.field < 0.7, np.uint8(4), np.uint8(5)).astype(np.uint8)
    out[s.water] = 6
    out[s.snow] = 11
    out[s.shadow] = 3
    out[s.cirrus] = 10
    out[s.opaque > 0] = 8
    out[s.opaque > 0.5] = 9
    out[~s.valid] = 0
    return out


def cloud_probability(scene: Scene, xs: np.ndarray, ys: np.ndarray, surf: Surface | None = None) -> np.ndarray:
    """MSK_CLDPRB values (uint8 %): 50-100 in opaque clouds, 25 in cirrus, 0 elsewhere and in no-data."""
    s = surf if surf is not None else surface(scene, xs, ys)
    out = np.zeros(s.valid.shape, dtype=np.uint8)
    out[s.cirrus] = 25
    cloud = s.opaque > 0
    out[cloud] = np.round(50.0 + 50.0 * s.opaque[cloud]).astype(np.uint8)
    out[~s.valid] = 0
    return out


def snow_probability(scene: Scene, xs: np.ndarray, ys: np.ndarray, surf: Surface | None = None) -> np.ndarray:
    """MSK_SNWPRB values (uint8 %): 100 on the snow patch, 0 elsewhere."""
    s = surf if surf is not None else surface(scene, xs, ys)
    return np.where(s.snow & s.valid, np.uint8(100), np.uint8(0)).astype(np.uint8)


def classi(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """MSK_CLASSI layers (3, H, W) uint8: opaque clouds, cirrus, snow/ice; 0 in no-data."""
    s = surface(scene, xs, ys)
    layers = np.stack([s.opaque > 0, s.cirrus, s.snow]) & s.valid[None]
    return layers.astype(np.uint8)


def ten_m_reflectance(scene: Scene, band: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Unquantised reflectance of a 10 m band at the given centres (no-data not applied)."""
    i = _TEN_M_BANDS.index(band)
    s = surface(scene, xs, ys)
    u = scene.u(xs)[None, :]
    texture = (
        0.01 * np.sin(2 * np.pi * np.asarray(xs)[None, :] / 170.0) * np.cos(2 * np.pi * np.asarray(ys)[:, None] / 230.0)
    )
    refl = np.where(s.field < 0.7, _VEG[i], _SOIL[i]) + (s.field - 0.5) * 0.04 + 0.03 * u + texture
    refl = np.where(s.water, _WATER[i], refl)
    refl = np.where(s.snow, _SNOW[i], refl)
    refl = np.where(s.shadow, refl * 0.4, refl)
    refl = np.where(s.cirrus, refl + 0.06, refl)
    refl = np.where(s.opaque > 0, refl + 0.35 + 0.4 * s.opaque, refl)
    if scene.level == "L1C":
        refl = refl + _L1C_HAZE[i]
    xs_a = np.asarray(xs, dtype=np.float64)
    ys_a = np.asarray(ys, dtype=np.float64)
    for tx, ty in scene.point_targets:
        cols = np.nonzero(np.abs(xs_a - tx) < 1e-6)[0]
        rows = np.nonzero(np.abs(ys_a - ty) < 1e-6)[0]
        if cols.size and rows.size:
            refl[np.ix_(rows, cols)] = POINT_TARGET_REFLECTANCE
    return np.clip(refl, 0.0001, 1.5)


def plane_reflectance(scene: Scene, band: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Reflectance of a 20 m / 60 m band: the band's plane at the given points."""
    a, b, c = scene.planes[band]
    return a + b * scene.u(xs)[None, :] + c * scene.v(ys)[:, None]


def quantise(refl: np.ndarray, offset: int, ok: np.ndarray) -> np.ndarray:
    """DN = round(reflectance * 10000 - offset), clipped to 1..65534 where valid, 0 elsewhere."""
    dn = np.clip(np.round(refl * 10000.0 - offset), 1, 65534).astype(np.uint16)
    dn[~ok] = 0
    return dn


def band_dn(scene: Scene, band: str, xs: np.ndarray, ys: np.ndarray, offset: int) -> np.ndarray:
    """The DN a band file holds at the given native pixel centres (uint16, 0 in no-data)."""
    ok = valid(scene, xs, ys)
    if band == "AOT":
        return np.where(ok, np.uint16(_AOT_DN), np.uint16(0)).astype(np.uint16)
    if band == "WVP":
        return np.where(ok, np.uint16(_WVP_DN), np.uint16(0)).astype(np.uint16)
    if band in _TEN_M_BANDS:
        return quantise(ten_m_reflectance(scene, band, xs, ys), offset, ok)
    return quantise(plane_reflectance(scene, band, xs, ys), offset, ok)


AOT_VALUE = _AOT_DN / 1000.0
WVP_VALUE = _WVP_DN / 1000.0
TEN_M_BANDS = _TEN_M_BANDS
