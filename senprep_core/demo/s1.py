"""Synthetic Sentinel-1 IW GRDH products with an exactly known ground truth (demo and closed-loop tests).

:func:`make_s1_product` writes a small GRD (by default 1500 lines x 1200 samples at 10 m, a
sub-swath-size cut) laid out like a real ESA product (``manifest.safe``,
``annotation/s1a-iw-grd-vv-...-001.xml``, ``annotation/calibration/calibration-...xml`` and
``noise-...xml``, ``measurement/s1a-iw-grd-vv-...-001.tiff``), and :func:`s1_ground_truth` returns
what a correct chain must recover: sigma0 as a function of lat/lon per polarisation, the
point-target positions and the DEM.

Forward model, per GRD pixel (line, pixel):

1. geometry: a circular S1-like orbit in the Earth-fixed frame (:mod:`~senprep_core.demo.s1_orbit`)
   and ESA's GRD conventions (bistatic delay applied, ground range along the ellipsoid, nearest
   coordinate-conversion record; :mod:`~senprep_core.demo.s1_image`);
2. the pixel is geolocated on the DEM (``h = dem(lat, lon)`` solved per pixel; in layover the
   first solution found is used; the default DEMs have none);
3. ``sigma0 = truth(lat, lon)`` -- sigma0 is simulated directly: terrain does not change the
   backscatter (no area or incidence effect), so a chain that only calibrates to sigma0 must
   find the truth exactly, on any DEM;
4. ``DN**2 = (sigma0 * sigmaLUT**2 + noise) * speckle`` with ``noise = noiseRange * noiseAzimuth``
   (what ESA's thermal-noise removal subtracts; both terms are interpolated bilinearly from the
   annotated vectors, as the chain and xarray-sentinel do) and ``speckle ~ Gamma(L, 1/L)``
   independent per pixel (no speckle when ``looks`` is infinite). Signal and noise share the
   speckle, as both are circular Gaussian before detection: the expected value is the same as
   adding a deterministic noise power. ``DN = round(sqrt(.))`` clipped to [1, 65535]; DN 0 marks
   the no-data border (a few columns at near range varying along azimuth, two at far range).

Calibration LUTs: betaNought constant (``spec.beta0``), sigmaNought = betaNought / sqrt(sin θ),
gamma = betaNought / sqrt(tan θ) with θ the ellipsoid incidence angle; noise range vectors are
``NESZ(pixel) * sigmaLUT**2`` with a smooth elevation-pattern-like NESZ profile (minimum
``spec.nesz_db``); one azimuth noise block (IPF >= 2.90) with a burst-like scalloping of +-6 %.
Products are written under ``<name>.tmp-<pid>`` and renamed when complete.

Modules: ``s1_orbit`` (orbit, own range-Doppler solver), ``s1_image`` (image timing, ground-range
polynomials, per-pixel geolocation), ``s1_scene`` (sigma0 truth, DEM presets), ``s1_radar``
(LUTs, DN simulation, measurement TIFF), ``s1_xml`` (annotation, calibration, noise, manifest).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from senprep_core.demo import s1_xml
from senprep_core.demo.publish import publish_product
from senprep_core.demo.s1_image import (
    SPEED_OF_LIGHT,
    ImageGeometry,
    PixelLocator,
    build_geometry,
)
from senprep_core.demo.s1_orbit import ecef_to_geodetic, incidence_and_elevation
from senprep_core.demo.s1_radar import incidence_lattice, make_luts, simulate_dn, write_measurement
from senprep_core.demo.s1_scene import (
    ConstantDem,
    DefaultScene,
    Field,
    HillyDem,
    LocalFrame,
    read_raster_dem,
)
from senprep_core.errors import ConfigError

log = logging.getLogger(__name__)

RADAR_FREQUENCY = 5.405000454334350e9
RANGE_SAMPLING_RATE = 6.434523812571428e7
ORBIT_PERIOD = 12 * 86400 / 175  # seconds, 175 orbits per 12-day repeat cycle
# (time, absolute orbit) anchors of real products, and the offsets of the relative orbit formula
_ORBIT_ANCHORS = {
    "S1A": (datetime(2022, 1, 4, 17, 5, 57), 41314, 73),
    "S1B": (datetime(2021, 12, 23, 5, 11, 22), 30148, 27),
}
_POL_SETS = {("VV",): "SV", ("VV", "VH"): "DV", ("HH",): "SH", ("HH", "HV"): "DH"}

Sigma0Fn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class S1DemoSpec:
    """What a synthetic GRD looks like. Same spec -> same product name and byte-identical files.

    ``sigma0``: None (the default scene of :mod:`~senprep_core.demo.s1_scene`), one function
    ``(lat, lon) -> linear sigma0`` used for every polarisation, or a mapping polarisation ->
    function. ``dem``: ``"flat"`` (0 m), ``"hilly"``, a number (constant ellipsoidal height), a
    function ``(lat, lon) -> ellipsoidal height`` or the path of a lon/lat GeoTIFF of ellipsoidal
    heights. ``scene_origin`` (lon, lat) anchors the default scene and the hilly DEM (default:
    the scene centre); products of one demo share it so they see the same world.
    Functions are part of the spec hash by module, name, code and captured values (best effort).
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
        if not (20.0 <= self.incidence_near <= 47.0):
            raise ConfigError(
                "incidence_near", self.incidence_near, "use an IW-like incidence between 20 and 47 degrees"
            )
        if not (self.looks >= 1.0):
            raise ConfigError("looks", self.looks, "use an equivalent number of looks >= 1 (math.inf: no speckle)")
        if not (1.0 <= self.pixel_spacing <= 100.0):
            raise ConfigError("pixel_spacing", self.pixel_spacing, "use a spacing between 1 and 100 m (GRDH: 10)")
        try:
            float(self.ipf_version)
        except ValueError:
            raise ConfigError("ipf_version", self.ipf_version, "use an IPF version like '003.71'") from None
        if isinstance(self.dem, str | Path) and str(self.dem) not in ("flat", "hilly") and not Path(self.dem).is_file():
            raise ConfigError("dem", self.dem, "use 'flat', 'hilly', a number, a function or an existing GeoTIFF path")

    # ----- identity
    @property
    def digest(self) -> str:
        """SHA-256 of everything that decides the product's content (not ``as_zip``)."""
        parts = [f"{f.name}={_token(getattr(self, f.name))}" for f in fields(self) if f.name != "as_zip"]
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
            f"{self.mission}_IW_GRDH_1S{_POL_SETS[self.polarisations]}_{self.start_time:%Y%m%dT%H%M%S}"
            f"_{self.stop_time:%Y%m%dT%H%M%S}_{self.absolute_orbit:06d}_{self.datatake_id:06X}"
            f"_{self.digest[5:9].upper()}"
        )

    def file_stem(self, pol: str) -> str:
        """Stem of the measurement / annotation files of a polarisation."""
        number = 1 if pol in ("VV", "HH") else 2
        return (
            f"{self.mission.lower()}-iw-grd-{pol.lower()}-{self.start_time:%Y%m%dt%H%M%S}"
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


# ----------------------------------------------------------------------------- ground truth


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


def _origin(spec: S1DemoSpec) -> LocalFrame:
    lon, lat = spec.scene_origin if spec.scene_origin is not None else (spec.centre_lon, spec.centre_lat)
    return LocalFrame(lon, lat)


def resolve_dem(spec: S1DemoSpec) -> Field:
    """The DEM function of a spec."""
    dem = spec.dem
    if isinstance(dem, str) and dem == "flat":
        return ConstantDem(0.0)
    if isinstance(dem, str) and dem == "hilly":
        return HillyDem(_origin(spec))
    if isinstance(dem, int | float):
        return ConstantDem(float(dem))
    if isinstance(dem, str | Path):
        return read_raster_dem(str(dem))
    return dem


def s1_ground_truth(spec: S1DemoSpec) -> S1Truth:
    """The ground truth of ``spec`` (cheap: no image is generated)."""
    scene = DefaultScene(_origin(spec))
    sigma: dict[str, Sigma0Fn]
    if spec.sigma0 is None:
        sigma = {pol: functools.partial(scene.sigma0, pol) for pol in spec.polarisations}
    elif isinstance(spec.sigma0, Mapping):
        missing = [p for p in spec.polarisations if p not in spec.sigma0]
        if missing:
            raise ConfigError("sigma0", sorted(spec.sigma0), f"give a function for {', '.join(missing)} too")
        sigma = {pol: spec.sigma0[pol] for pol in spec.polarisations}
    else:
        sigma = dict.fromkeys(spec.polarisations, spec.sigma0)
    dem = resolve_dem(spec)
    g = spec.geometry
    corners_l = np.array([0.0, 0.0, g.lines - 1.0, g.lines - 1.0])
    corners_p = np.array([0.0, g.samples - 1.0, g.samples - 1.0, 0.0])
    lat, lon, _ = g.geolocate_on_dem(corners_l, corners_p, dem)
    footprint = tuple((float(a), float(b)) for a, b in zip(lon, lat, strict=True))
    default = spec.sigma0 is None
    return S1Truth(
        spec=spec,
        dem=dem,
        point_targets=scene.point_targets() if default else (),
        bright_squares=scene.bright_squares() if default else (),
        footprint=footprint,
        _sigma0=sigma,
    )


# ----------------------------------------------------------------------------- writing


def _tie_points(spec: S1DemoSpec, dem: Field) -> dict[str, np.ndarray]:
    """The 10 x 21 geolocation grid: lat/lon on the DEM, zero-Doppler times, ranges, angles."""
    g = spec.geometry
    lines = np.unique(np.round(np.linspace(0, spec.lines - 1, 10)).astype(np.int64))
    pixels = np.unique(np.round(np.linspace(0, spec.samples - 1, 21)).astype(np.int64))
    ll, pp = (a.ravel().astype(np.float64) for a in np.meshgrid(lines, pixels, indexing="ij"))
    lat, lon, h = g.geolocate_on_dem(ll, pp, dem)
    _, tau, t_zd = g.range_and_time(ll, pp)
    pos, _ = g.orbit.state(t_zd)
    inc, elev = incidence_and_elevation(lat, lon, h, pos)
    return {"line": ll, "pixel": pp, "time": t_zd, "tau": tau, "lat": lat, "lon": lon, "h": h, "inc": inc, "elev": elev}


def _heading(g: ImageGeometry) -> float:
    """Platform heading (degrees from north, -180..180) at mid image."""
    pos, vel = g.orbit.state(g.last_line_time / 2.0)
    lat, lon, _ = ecef_to_geodetic(pos)
    phi, lam = math.radians(float(lat)), math.radians(float(lon))
    east = np.array([-math.sin(lam), math.cos(lam), 0.0])
    north = np.array([-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi)])
    return math.degrees(math.atan2(float(vel @ east), float(vel @ north)))


def _orbit_vectors(spec: S1DemoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State vectors every 10 s (on whole 10 s of UTC) covering the acquisition +- 60 s."""
    g = spec.geometry
    epoch = spec.start_time
    base = epoch.replace(second=epoch.second - epoch.second % 10, microsecond=0) - timedelta(seconds=60)
    first = (base - epoch).total_seconds()
    times = first + 10.0 * np.arange(math.ceil((g.last_line_time + 60.0 - first) / 10.0) + 1)
    pos, vel = g.orbit.state(times)
    return times, pos, vel


def _fm_rate(g: ImageGeometry) -> tuple[float, float, float]:
    """A plausible azimuth FM rate polynomial (Hz/s) in two-way slant-range time from ``tau0``."""
    _, vel = g.orbit.state(0.0)
    wavelength = SPEED_OF_LIGHT / RADAR_FREQUENCY
    speed2 = float(vel @ vel) * 0.88  # effective velocity squared (satellite x ground speed)
    ka0 = -2.0 * speed2 / (wavelength * g.sr0)
    return ka0, -ka0 / g.tau0, 0.0


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build_safe(spec: S1DemoSpec, safe: Path) -> None:
    """Write the whole product into ``safe`` (a folder that does not exist yet)."""
    g = spec.geometry
    truth = s1_ground_truth(spec)
    luts = make_luts(spec)
    dn = simulate_dn(spec, truth, luts, PixelLocator.build(g, truth.dem))
    tie = _tie_points(spec, truth.dem)
    times, pos, vel = _orbit_vectors(spec)
    epoch = spec.start_time
    start, stop = s1_xml.utc(epoch, 0.0), s1_xml.utc(epoch, g.last_line_time)
    anx = g.orbit.ascending_node_time(g.last_line_time / 2.0)
    gcps = np.column_stack([tie["line"], tie["pixel"], tie["lat"], tie["lon"], tie["h"]])
    mid = (np.array([(spec.lines - 1) / 2.0]), np.array([(spec.samples - 1) / 2.0]))
    incidence_mid = float(incidence_lattice(g, *mid)[0, 0])
    safe.mkdir(parents=True)
    entries: list[tuple[str, str, str, int, str]] = []
    for pol in spec.polarisations:
        stem = spec.file_stem(pol)
        oid = stem.replace("-", "")
        header = s1_xml.Header(
            spec.mission, pol, start, stop, spec.absolute_orbit, spec.datatake_id, 1 if pol in ("VV", "HH") else 2
        )
        valid = dn[pol][dn[pol] > 0].astype(np.float64)
        info = s1_xml.AnnotationInfo(
            header=header, epoch=epoch, pass_direction=spec.pass_direction, platform_heading=_heading(g),
            radar_frequency=RADAR_FREQUENCY, range_sampling_rate=RANGE_SAMPLING_RATE,
            orbit_times=times, orbit_positions=pos, orbit_velocities=vel, anx_time=anx,
            lines=spec.lines, samples=spec.samples, azimuth_time_interval=g.azimuth_time_interval,
            range_spacing=spec.pixel_spacing, azimuth_spacing=spec.pixel_spacing, slant_range_time=g.tau0,
            incidence_mid=incidence_mid,
            tie_line=tie["line"], tie_pixel=tie["pixel"], tie_time=tie["time"], tie_tau=tie["tau"],
            tie_lat=tie["lat"], tie_lon=tie["lon"], tie_height=tie["h"], tie_incidence=tie["inc"],
            tie_elevation=tie["elev"], record_times=g.record_times, sr0=g.sr0, srgr=g.srgr, grsr=g.grsr,
            fm_rate=_fm_rate(g), dn_mean=float(valid.mean()) if valid.size else 0.0,
            dn_std=float(valid.std()) if valid.size else 0.0,
        )  # fmt: skip
        files = {
            f"measurement/{stem}.tiff": ("s1Level1MeasurementSchema", oid),
            f"annotation/{stem}.xml": ("s1Level1ProductSchema", f"product{oid}"),
            f"annotation/calibration/calibration-{stem}.xml": ("s1Level1CalibrationSchema", f"calibration{oid}"),
            f"annotation/calibration/noise-{stem}.xml": ("s1Level1NoiseSchema", f"noise{oid}"),
        }
        software = f"Sentinel-1 IPF {spec.ipf_version} (senprep demo simulator)"
        write_measurement(safe / f"measurement/{stem}.tiff", dn[pol], gcps, f"{spec.mission} IW GRD HR L1", software)
        (safe / "annotation/calibration").mkdir(parents=True, exist_ok=True)
        (safe / f"annotation/{stem}.xml").write_bytes(s1_xml.annotation(info))
        (safe / f"annotation/calibration/calibration-{stem}.xml").write_bytes(
            s1_xml.calibration(header, epoch, g.azimuth_time_interval, luts.calibration)
        )
        (safe / f"annotation/calibration/noise-{stem}.xml").write_bytes(
            s1_xml.noise(
                header, epoch, g.azimuth_time_interval, luts.noise_range, luts.azimuth, float(spec.ipf_version)
            )
        )
        for href, (rep, object_id) in files.items():
            entries.append((href, rep, object_id, (safe / href).stat().st_size, _md5(safe / href)))
    _write_quicklook(safe / "preview/quick-look.png", [dn[p] for p in spec.polarisations])
    generated = (epoch + timedelta(hours=1)).replace(microsecond=0)
    manifest = s1_xml.ManifestInfo(
        mission=spec.mission, polarisations=spec.polarisations, pass_direction=spec.pass_direction,
        absolute_orbit=spec.absolute_orbit, relative_orbit=spec.relative_orbit, datatake_id=spec.datatake_id,
        start=start, stop=stop, anx_time=s1_xml.utc(epoch, anx),
        processing_start=generated.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        processing_stop=(generated + timedelta(minutes=9)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        ipf_version=spec.ipf_version,
        footprint_latlon=tuple((lat, lon) for lon, lat in truth.footprint),
        files=tuple(sorted(entries, key=lambda e: (e[1] != "s1Level1ProductSchema", e[0]))),
    )  # fmt: skip
    (safe / "manifest.safe").write_bytes(s1_xml.manifest(manifest))


def _write_quicklook(path: Path, amplitudes: list[np.ndarray], step: int = 10) -> None:
    """``preview/quick-look.png`` as in real GRDs: a decimated RGB of the first / second polarisation and
    their ratio (dB, each stretched 2-98 %); grey with one polarisation."""
    import warnings

    import rasterio

    def stretch(db: np.ndarray) -> np.ndarray:
        finite = db[np.isfinite(db)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        return np.nan_to_num(np.clip((db - low) / max(high - low, 1e-6) * 255.0, 0, 255))

    with np.errstate(divide="ignore", invalid="ignore"):
        db = [10.0 * np.log10(a[::step, ::step].astype(np.float64) ** 2) for a in amplitudes]
    db = [np.where(np.isfinite(d), d, np.nan) for d in db]
    planes = [db[0], db[1], db[0] - db[1]] if len(db) > 1 else [db[0]] * 3
    rgb = np.stack([stretch(p) for p in planes]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=rgb.shape[2], height=rgb.shape[1], count=3,
                           dtype="uint8") as dst:  # fmt: skip
            dst.write(rgb)


def make_s1_product(spec: S1DemoSpec, folder: Path) -> Path:
    """Write the product of ``spec`` into ``folder``; return the ``.SAFE`` folder or the ``.zip`` (``spec.as_zip``).

    Cached: the name holds a digest of the spec, so an existing product of that name is returned
    as is. Work happens under ``<name>.tmp-<pid>`` and is renamed when complete.
    """
    return publish_product(folder, spec.product_id, lambda safe: _build_safe(spec, safe), spec.as_zip, spec.start_time)


# ----------------------------------------------------------------------------- demo catalog


def demo_s1_specs() -> list[S1DemoSpec]:
    """Two S1A products over the demo ROI (Glasgow): ascending 2021-08-14, descending 2022-04-21 (zipped).

    Both share the default scene and the hilly DEM anchored at the ROI centre, so their
    terrain-corrected sigma0 must agree with each other and with :func:`s1_ground_truth`.
    """
    from pyproj import Transformer

    from senprep_core.demo.catalog import DEMO_EPSG, DEMO_ROI_BOUNDS_UTM

    left, bottom, right, top = DEMO_ROI_BOUNDS_UTM
    lon, lat = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True).transform((left + right) / 2, (bottom + top) / 2)
    origin = (round(float(lon), 6), round(float(lat), 6))
    base = S1DemoSpec(
        start_time=datetime(2021, 8, 14, 17, 41, 35, 123456),
        centre_lon=origin[0] + 0.012,
        centre_lat=origin[1] + 0.006,
        pass_direction="ASCENDING",
        incidence_near=38.5,
        dem="hilly",
        scene_origin=origin,
        seed=21,
    )
    descending = replace(
        base,
        start_time=datetime(2022, 4, 21, 6, 23, 48, 654321),
        centre_lon=origin[0] - 0.010,
        centre_lat=origin[1] - 0.008,
        pass_direction="DESCENDING",
        incidence_near=33.2,
        seed=22,
        as_zip=True,
    )
    return [base, descending]
