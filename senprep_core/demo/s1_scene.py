"""The ground truth of synthetic Sentinel-1 products: radar backscatter (sigma0) and terrain heights.

Both are pure functions of geodetic latitude/longitude (degrees), continuous across the antimeridian
(longitudes are taken within 180° of the origin's). They are defined in local metres around a scene
origin (``east = (lon - lon0) * N cos(lat0)``, ``north = (lat - lat0) * M``
with the WGS84 prime-vertical and meridian radii at the origin): this mapping is part of the
definition, so the truth is exact, not an approximation.

Default scene (linear sigma0, VV / VH): grassland 0.05 / 0.01 everywhere, a lake (0.003 / 0.0006,
below the noise floor so thermal-noise removal matters), a forest (0.12 / 0.03), two fields,
an urban block (0.6 / 0.08), 60 m bright squares (3.0 / 0.3) and point targets: Gaussian spots
of 6 m standard deviation (peak 60 / 3), whose centres are the lon/lat a terrain-corrected
product must show them at. Fields are homogeneous (for speckle statistics); edges are sharp.

DEM presets (ellipsoidal WGS84 heights): ``"flat"`` (0 m everywhere) and ``"hilly"`` (60 m base,
three smooth hills up to ~410 m and a gentle 15 m undulation; slopes below ~20 degrees so the
image has no layover).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from senprep_core.demo.s1_orbit import WGS84_A, WGS84_E2
from senprep_core.geo.antimeridian import unwrap_near

#: (lat, lon) in degrees -> values (linear sigma0 or ellipsoidal height in metres)
Field = Callable[[np.ndarray, np.ndarray], np.ndarray]

POINT_TARGET_SIGMA_M = 6.0


@dataclass(frozen=True)
class LocalFrame:
    """Local east/north metres around an origin (lon0, lat0), see the module docstring."""

    lon0: float
    lat0: float

    @property
    def _radii(self) -> tuple[float, float]:
        s = math.sin(math.radians(self.lat0))
        w = math.sqrt(1.0 - WGS84_E2 * s * s)
        n = WGS84_A / w
        m = WGS84_A * (1.0 - WGS84_E2) / w**3
        return n * math.cos(math.radians(self.lat0)), m

    def to_local(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """East and north metres of geodetic points."""
        kx, ky = self._radii
        east = np.radians(unwrap_near(lon, self.lon0) - self.lon0) * kx
        north = np.radians(np.asarray(lat, dtype=np.float64) - self.lat0) * ky
        return east, north

    def to_lonlat_arrays(self, east: np.ndarray, north: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitudes and latitudes (degrees) of local metres (arrays)."""
        kx, ky = self._radii
        return self.lon0 + np.degrees(np.asarray(east) / kx), self.lat0 + np.degrees(np.asarray(north) / ky)

    def to_lonlat(self, east: float, north: float) -> tuple[float, float]:
        """Longitude and latitude (degrees) of local metres."""
        kx, ky = self._radii
        return self.lon0 + math.degrees(east / kx), self.lat0 + math.degrees(north / ky)


# (east, north, half width, half height) in metres, values (VV, VH)
_RECTANGLES: tuple[tuple[float, float, float, float, float, float], ...] = (
    (2600.0, -2400.0, 1100.0, 800.0, 0.12, 0.03),  # forest
    (-2200.0, -2600.0, 450.0, 450.0, 0.08, 0.015),  # field 1
    (-1200.0, -2600.0, 450.0, 450.0, 0.025, 0.004),  # field 2 (bare soil)
    (300.0, -3900.0, 250.0, 200.0, 0.6, 0.08),  # urban block
)
# (east, north, semi-axis east, semi-axis north), values (VV, VH)
_LAKE = (-2300.0, 2100.0, 1300.0, 700.0, 0.003, 0.0006)
_BRIGHT_SQUARES: tuple[tuple[float, float], ...] = ((600.0, 500.0), (-700.0, -300.0), (3200.0, 2600.0))
_BRIGHT_HALF = 30.0
_BRIGHT_VALUES = (3.0, 0.3)
_POINT_TARGETS: tuple[tuple[float, float], ...] = (
    (-400.0, 700.0),
    (800.0, -600.0),
    (-2600.0, 2000.0),  # inside the lake: dark background
    (-1900.0, 2300.0),
    (2000.0, 3400.0),
)
_POINT_PEAKS = (60.0, 3.0)
_BACKGROUND = (0.05, 0.01)


def _pol_index(pol: str) -> int:
    return 0 if pol.upper() in ("VV", "HH") else 1


@dataclass(frozen=True)
class DefaultScene:
    """The default sigma0 scene around ``frame``'s origin (see the module docstring)."""

    frame: LocalFrame
    point_sigma_m: float = POINT_TARGET_SIGMA_M  #: Gaussian width of the point targets (the resolution cell)

    def point_targets(self) -> tuple[tuple[float, float], ...]:
        """(lon, lat) of the point-target centres."""
        return tuple(self.frame.to_lonlat(e, n) for e, n in _POINT_TARGETS)

    def bright_squares(self) -> tuple[tuple[float, float], ...]:
        """(lon, lat) of the centres of the 60 m bright squares."""
        return tuple(self.frame.to_lonlat(e, n) for e, n in _BRIGHT_SQUARES)

    def sigma0(self, pol: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Linear sigma0 of polarisation ``pol`` (co-pol VV/HH or cross-pol VH/HV) at geodetic points."""
        k = _pol_index(pol)
        x, y = self.frame.to_local(lat, lon)
        out = np.full(x.shape, _BACKGROUND[k])
        for cx, cy, hw, hh, vv, vh in _RECTANGLES:
            out[(np.abs(x - cx) <= hw) & (np.abs(y - cy) <= hh)] = (vv, vh)[k]
        cx, cy, ax, ay, vv, vh = _LAKE
        out[((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0] = (vv, vh)[k]
        for cx, cy in _BRIGHT_SQUARES:
            out[(np.abs(x - cx) <= _BRIGHT_HALF) & (np.abs(y - cy) <= _BRIGHT_HALF)] = _BRIGHT_VALUES[k]
        for cx, cy in _POINT_TARGETS:
            width = self.point_sigma_m
            near = (np.abs(x - cx) < 8 * width) & (np.abs(y - cy) < 8 * width)
            if near.any():
                d2 = (x[near] - cx) ** 2 + (y[near] - cy) ** 2
                out[near] += _POINT_PEAKS[k] * np.exp(-0.5 * d2 / width**2)
        return out


# (east, north, amplitude, sigma) in metres
_HILLS: tuple[tuple[float, float, float, float], ...] = (
    (-3200.0, 3600.0, 350.0, 1800.0),
    (3600.0, 900.0, 250.0, 1200.0),
    (200.0, -3800.0, 180.0, 2500.0),
)
HILLY_BASE = 60.0


@dataclass(frozen=True)
class HillyDem:
    """The ``"hilly"`` preset: ellipsoidal heights (m) around ``frame``'s origin."""

    frame: LocalFrame

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        x, y = self.frame.to_local(lat, lon)
        h = np.full(x.shape, HILLY_BASE)
        for cx, cy, amp, sig in _HILLS:
            h += amp * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sig**2)
        h += 15.0 * np.sin(2 * math.pi * x / 700.0) * np.cos(2 * math.pi * y / 900.0)
        return h


@dataclass(frozen=True)
class ConstantDem:
    """A constant ellipsoidal height (m); ``"flat"`` is 0 m."""

    height: float = 0.0

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.full(np.broadcast_shapes(np.shape(lat), np.shape(lon)), float(self.height))


@dataclass(frozen=True)
class RasterDem:
    """Heights from a GeoTIFF in geographic coordinates (bilinear; ellipsoidal metres assumed).

    ``values`` are the raster rows (north-up), ``transform`` the affine of pixel edges as
    (x0, dx, y0, dy) with dy < 0.
    """

    values: np.ndarray
    x0: float
    dx: float
    y0: float
    dy: float

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        lat = np.asarray(lat, dtype=np.float64)
        centre = self.x0 + self.dx * self.values.shape[1] / 2.0
        lon = unwrap_near(lon, centre)  # a DEM across the antimeridian has longitudes past 180
        col = (lon - self.x0) / self.dx - 0.5
        row = (lat - self.y0) / self.dy - 0.5
        flat = map_coordinates(self.values, [row.ravel(), col.ravel()], order=1, mode="nearest")
        return flat.reshape(np.broadcast_shapes(lat.shape, lon.shape))


def read_raster_dem(path: str) -> RasterDem:
    """Load a DEM GeoTIFF in a geographic CRS into a :class:`RasterDem` (no data -> DEMError)."""
    import rasterio

    from senprep_core.errors import DEMError

    try:
        with rasterio.open(path) as src:
            if src.crs is None or not src.crs.is_geographic:
                raise DEMError(
                    f"demo DEM {path} is not in a geographic CRS ({src.crs}); "
                    "give a lon/lat GeoTIFF (EPSG:4326) of ellipsoidal heights"
                )
            data = src.read(1, masked=True).astype(np.float64)
            t = src.transform
    except rasterio.RasterioIOError as exc:
        raise DEMError(f"demo DEM {path} cannot be read ({exc}); give a readable GeoTIFF") from exc
    if np.ma.is_masked(data) and data.mask.any():
        raise DEMError(f"demo DEM {path} has no-data pixels; fill them first (e.g. gdal_fillnodata)")
    return RasterDem(np.asarray(data), t.c, t.a, t.f, t.e)
