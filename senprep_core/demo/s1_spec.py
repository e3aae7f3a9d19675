"""What a synthetic Sentinel-1 GRD is made of: its spec (:class:`S1DemoSpec`) and its ground truth (:class:`S1Truth`).

:mod:`senprep_core.demo.s1` writes the product of a spec and computes its truth
(:func:`~senprep_core.demo.s1.s1_ground_truth`); :mod:`senprep_core.demo.s1_radar` simulates its DNs.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from senprep_core.demo.s1_image import ImageGeometry, build_geometry
from senprep_core.demo.s1_modes import MODES, DemoMode
from senprep_core.demo.s1_scene import Field
from senprep_core.errors import ConfigError

__all__ = ["ORBIT_PERIOD", "S1DemoSpec", "S1Truth", "Sigma0Fn"]

ORBIT_PERIOD = 12 * 86400 / 175  # seconds, 175 orbits per 12-day repeat cycle
# (time, absolute orbit) anchors of real products, and the offsets of the relative orbit formula
_ORBIT_ANCHORS = {
    "S1A": (datetime(2022, 1, 4, 17, 5, 57), 41314, 73),
    "S1B": (datetime(2021, 12, 23, 5, 11, 22), 30148, 27),
}
DEM_PRESETS = ("flat", "hilly", "relief")
_POL_SETS = {("VV",): "SV", ("VV", "VH"): "DV", ("HH",): "SH", ("HH", "HV"): "DH"}

Sigma0Fn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class S1DemoSpec:
    """What a synthetic GRD looks like. Same spec -> same product name and byte-identical files.

    ``sigma0``: None (the default scene of :mod:`~senprep_core.demo.s1_scene`), one function
    ``(lat, lon) -> linear sigma0`` used for every polarisation, or a mapping polarisation ->
    function. ``dem``: ``"flat"`` (0 m), ``"hilly"``, a number (constant ellipsoidal height), a
    function ``(lat, lon) -> ellipsoidal height`` or the path of a lon/lat GeoTIFF of ellipsoidal
    heights; ``"relief"`` has slopes to 30 degrees and a steep ridge (layover and shadow).
    ``radiometry="gamma0"``: the ``sigma0`` functions (default: land classes) give gamma0 and the
    image is formed through the DEM facets' areas (:mod:`~senprep_core.demo.s1_relief`).
    ``scene_origin`` (lon, lat) anchors the default scene and the hilly DEM (default:
    the scene centre); products of one demo share it so they see the same world.
    Functions are part of the spec hash by module, name, code and captured values (best effort).
    ``mode`` changes the names and annotation (:mod:`~senprep_core.demo.s1_modes`); :meth:`in_mode` also
    takes that mode's usual spacing, looks and incidence.
    """

    start_time: datetime  #: first line time, UTC
    centre_lon: float
    centre_lat: float
    pass_direction: str = "ASCENDING"
    mission: str = "S1A"
    polarisations: tuple[str, ...] = ("VV", "VH")
    lines: int = 1500
    samples: int = 1200
    pixel_spacing: float = 10.0  #: ground range and azimuth spacing, m
    incidence_near: float = 35.0  #: incidence angle at pixel 0, degrees (IW: 30-46)
    ipf_version: str = "003.71"
    nesz_db: float | None = -24.0  #: thermal noise floor (minimum over range); None = no noise
    looks: float = 4.4  #: equivalent number of looks of the speckle; math.inf = no speckle
    seed: int = 0
    sigma0: Sigma0Fn | Mapping[str, Sigma0Fn] | None = None
    dem: str | float | Path | Field = "flat"
    scene_origin: tuple[float, float] | None = None
    beta0: float = 237.0
    nodata_border: bool = True
    as_zip: bool = False
    radiometry: str = "sigma0"  #: "sigma0": the truth is sigma0; "gamma0": gamma0 imaged through the DEM facets
    mode: str = "IW"  #: acquisition mode: "IW", "EW" or stripmap "S1".."S6" (see :mod:`~senprep_core.demo.s1_modes`)

    def __post_init__(self) -> None:
        if self.start_time.tzinfo is not None:
            object.__setattr__(self, "start_time", self.start_time.astimezone(timezone.utc).replace(tzinfo=None))
        if self.mission not in _ORBIT_ANCHORS:
            raise ConfigError("mission", self.mission, f"use one of {', '.join(_ORBIT_ANCHORS)}")
        direction = self.pass_direction.upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise ConfigError("pass_direction", self.pass_direction, "use 'ASCENDING' or 'DESCENDING'")
        object.__setattr__(self, "pass_direction", direction)
        pols = tuple(p.upper() for p in self.polarisations)
        if pols not in _POL_SETS:
            raise ConfigError("polarisations", self.polarisations, "use ('VV',), ('VV', 'VH'), ('HH',) or ('HH', 'HV')")
        object.__setattr__(self, "polarisations", pols)
        if not (-80.0 < self.centre_lat < 80.0) or not (-180.0 <= self.centre_lon <= 180.0):
            raise ConfigError(
                "centre_lon/centre_lat", (self.centre_lon, self.centre_lat), "use lon in [-180, 180], lat in (-80, 80)"
            )
        if not (16 <= self.lines <= 30000 and 16 <= self.samples <= 30000):
            raise ConfigError("lines/samples", (self.lines, self.samples), "use 16 to 30000 lines and samples")
        if self.mode.upper() not in MODES:
            raise ConfigError("mode", self.mode, f"use one of {', '.join(MODES)}")
        object.__setattr__(self, "mode", self.mode.upper())
        if not (15.0 <= self.incidence_near <= 47.0):
            raise ConfigError("incidence_near", self.incidence_near, "use an incidence between 15 and 47 degrees")
        if not (self.looks >= 1.0):
            raise ConfigError("looks", self.looks, "use an equivalent number of looks >= 1 (math.inf: no speckle)")
        if not (1.0 <= self.pixel_spacing <= 100.0):
            raise ConfigError("pixel_spacing", self.pixel_spacing, "use a spacing between 1 and 100 m (GRDH: 10)")
        try:
            float(self.ipf_version)
        except ValueError:
            raise ConfigError("ipf_version", self.ipf_version, "use an IPF version like '003.71'") from None
        if isinstance(self.dem, str | Path) and str(self.dem) not in DEM_PRESETS and not Path(self.dem).is_file():
            raise ConfigError(
                "dem", self.dem, "use 'flat', 'hilly', 'relief', a number, a function or an existing GeoTIFF path"
            )
        if self.radiometry not in ("sigma0", "gamma0"):
            raise ConfigError("radiometry", self.radiometry, "use 'sigma0' or 'gamma0' (terrain radiometry)")

    @classmethod
    def in_mode(cls, mode: str, **values: object) -> S1DemoSpec:
        """A spec of ``mode`` with that mode's usual pixel spacing, looks and near incidence unless ``values``
        give them (e.g. ``S1DemoSpec.in_mode("EW", start_time=..., centre_lon=..., centre_lat=...)``)."""
        if str(mode).upper() not in MODES:
            raise ConfigError("mode", mode, f"use one of {', '.join(MODES)}")
        m = MODES[str(mode).upper()]
        usual = {"pixel_spacing": m.pixel_spacing, "looks": m.looks, "incidence_near": m.incidence_near}
        return cls(**{**usual, **values, "mode": m.name})  # type: ignore[arg-type]

    # ----- identity
    @property
    def acquisition(self) -> DemoMode:
        """The acquisition mode's names and sub-swaths."""
        return MODES[self.mode]

    @property
    def digest(self) -> str:
        """SHA-256 of everything that decides the product's content (not ``as_zip``; ``radiometry`` and ``mode``
        only when not their defaults, so older products keep their names)."""
        parts = [
            f"{f.name}={_token(getattr(self, f.name))}"
            for f in fields(self)
            if f.name != "as_zip"
            and not (f.name == "radiometry" and self.radiometry == "sigma0")
            and not (f.name == "mode" and self.mode == "IW")
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    @property
    def geometry(self) -> ImageGeometry:
        """The orbit and image geometry (cached per geometry parameters)."""
        return _geometry(
            self.centre_lat,
            self.centre_lon,
            self.incidence_near,
            self.pass_direction == "ASCENDING",
            self.lines,
            self.samples,
            self.pixel_spacing,
        )

    @property
    def stop_time(self) -> datetime:
        """Last line time."""
        return self.start_time + timedelta(microseconds=round(self.geometry.last_line_time * 1e6))

    @property
    def absolute_orbit(self) -> int:
        """A plausible absolute orbit number (175 orbits per 12 days from a real product's)."""
        when, orbit, _ = _ORBIT_ANCHORS[self.mission]
        return orbit + math.floor((self.start_time - when).total_seconds() / ORBIT_PERIOD + 0.5)

    @property
    def relative_orbit(self) -> int:
        """Relative orbit from the absolute one (ESA formula per mission)."""
        return (self.absolute_orbit - _ORBIT_ANCHORS[self.mission][2]) % 175 + 1

    @property
    def datatake_id(self) -> int:
        return int(self.digest[:5], 16)

    @property
    def product_id(self) -> str:
        """Real naming, e.g. ``S1A_IW_GRDH_1SDV_20210814T174135_20210814T174137_039237_04A1F3_1C2B``."""
        return (
            f"{self.mission}_{self.mode}_GRD{self.acquisition.resolution}_1S{_POL_SETS[self.polarisations]}_{self.start_time:%Y%m%dT%H%M%S}"
            f"_{self.stop_time:%Y%m%dT%H%M%S}_{self.absolute_orbit:06d}_{self.datatake_id:06X}"
            f"_{self.digest[5:9].upper()}"
        )

    def file_stem(self, pol: str) -> str:
        """Stem of the measurement / annotation files of a polarisation."""
        number = 1 if pol in ("VV", "HH") else 2
        return (
            f"{self.mission.lower()}-{self.mode.lower()}-grd-{pol.lower()}-{self.start_time:%Y%m%dt%H%M%S}"
            f"-{self.stop_time:%Y%m%dt%H%M%S}-{self.absolute_orbit:06d}-{self.datatake_id:06x}-{number:03d}"
        )


@functools.lru_cache(maxsize=32)
def _geometry(
    lat: float, lon: float, inc: float, ascending: bool, lines: int, samples: int, spacing: float
) -> ImageGeometry:
    return build_geometry(lat, lon, inc, ascending, lines, samples, spacing, spacing)


def _token(value: object) -> str:
    """A stable text for hashing a spec field (functions by module, name, code and captured values)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_token(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, Path) or (isinstance(value, str) and Path(value).is_file()):
        p = Path(value)
        st = p.stat()
        return f"file:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if inspect.isfunction(value):
        code = value.__code__
        captured = [c.cell_contents for c in value.__closure__ or ()]
        return (
            f"fn:{value.__module__}.{value.__qualname__}:{code.co_code.hex()}:{code.co_consts!r}"
            f":{captured!r}:{value.__defaults__!r}"
        )
    return repr(value)


@dataclass(frozen=True)
class S1Truth:
    """The truth behind a synthetic product: sigma0(pol, lat, lon), the DEM, point-target lon/lat."""

    spec: S1DemoSpec
    dem: Field  #: (lat, lon) -> ellipsoidal height (m)
    point_targets: tuple[tuple[float, float], ...]  #: (lon, lat) of the Gaussian point targets (default scene)
    bright_squares: tuple[tuple[float, float], ...]  #: (lon, lat) centres of the 60 m bright squares
    footprint: tuple[tuple[float, float], ...]  #: (lon, lat) of the image corners on the DEM
    _sigma0: Mapping[str, Sigma0Fn]

    def sigma0(self, pol: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Linear sigma0 of a polarisation at geodetic points (degrees)."""
        pol = pol.upper()
        if pol not in self._sigma0:
            raise KeyError(f"the product has no {pol}; it has {', '.join(self._sigma0)}")
        lat, lon = np.broadcast_arrays(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
        return np.asarray(self._sigma0[pol](lat, lon), dtype=np.float64)

    def write_dem(self, path: Path, margin_deg: float = 0.02, resolution_deg: float = 1.0 / 3600.0) -> Path:
        """Write the DEM over the footprint (+ margin) as a float32 GeoTIFF of ellipsoidal heights.

        The CRS is EPSG:4979 (WGS84 3-D: lon/lat with ellipsoidal heights), which the chain's DEM
        loader recognises with ``sentinel1.geoid: auto`` (no geoid is added).
        """
        import rasterio
        from affine import Affine

        lons = [p[0] for p in self.footprint]
        lats = [p[1] for p in self.footprint]
        west = math.floor((min(lons) - margin_deg) / resolution_deg) * resolution_deg
        north = math.ceil((max(lats) + margin_deg) / resolution_deg) * resolution_deg
        width = math.ceil((max(lons) + margin_deg - west) / resolution_deg)
        height = math.ceil((north - (min(lats) - margin_deg)) / resolution_deg)
        lon_c = west + (np.arange(width) + 0.5) * resolution_deg
        lat_c = north - (np.arange(height) + 0.5) * resolution_deg
        grid_lat, grid_lon = np.meshgrid(lat_c, lon_c, indexing="ij")
        values = np.asarray(self.dem(grid_lat, grid_lon), dtype=np.float32)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:4979",
            "transform": Affine(resolution_deg, 0.0, west, 0.0, -resolution_deg, north),
            "compress": "deflate",
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values, 1)
            dst.update_tags(HEIGHTS="ellipsoidal WGS84", SOURCE=f"senprep demo {self.spec.product_id}")
        return path
