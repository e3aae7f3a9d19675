"""Synthetic Sentinel-1 GRD products (IW GRDH, EW GRDM, stripmap S1-S6 GRDH) with an exactly known ground truth
(demo and closed-loop tests).

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
   find the truth exactly, on any DEM. With ``radiometry="gamma0"`` the truth functions give gamma0
   instead and each pixel's beta0 comes from the DEM facets that fall in it, through their
   illuminated area, with layover and shadow (:mod:`~senprep_core.demo.s1_relief`;
   :func:`s1_terrain_truth` returns that beta0 and the layover / shadow flags);
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

Modes (``spec.mode``; :mod:`~senprep_core.demo.s1_modes`): ``IW`` (default), ``EW`` (GRDM, five sub-swaths each
with its own azimuth noise block and merge bounds) and stripmap ``S1``..``S6``; the forward model is the same,
only names, annotation and the usual spacing / looks differ (:meth:`S1DemoSpec.in_mode`). Point targets are
as wide as the resolution cell (Gaussian sigma 6 m at 10 m spacing, scaled with the spacing).

Modules: ``s1_spec`` (the spec and truth dataclasses), ``s1_orbit`` (orbit, own range-Doppler solver),
``s1_image`` (image timing, ground-range polynomials, per-pixel geolocation), ``s1_scene`` (sigma0
truth, DEM presets), ``s1_relief`` (terrain radiometry, the relief DEM and land classes), ``s1_radar``
(LUTs, DN simulation, measurement TIFF), ``s1_xml`` (annotation,
calibration, noise, manifest). The demo catalog's specs are in :mod:`senprep_core.demo.catalog`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import numpy as np

from senprep_core.demo import s1_xml
from senprep_core.demo.publish import publish_product
from senprep_core.demo.s1_image import SPEED_OF_LIGHT, ImageGeometry, PixelLocator
from senprep_core.demo.s1_modes import split_subswaths
from senprep_core.demo.s1_orbit import ecef_to_geodetic, incidence_and_elevation
from senprep_core.demo.s1_radar import incidence_lattice, make_luts, simulate_dn, write_measurement
from senprep_core.demo.s1_relief import LandClasses, ReliefDem, TerrainTruth, terrain_truth
from senprep_core.demo.s1_scene import (
    POINT_TARGET_SIGMA_M,
    ConstantDem,
    DefaultScene,
    Field,
    HillyDem,
    LocalFrame,
    read_raster_dem,
)
from senprep_core.demo.s1_spec import S1DemoSpec, S1Truth, Sigma0Fn
from senprep_core.errors import ConfigError
from senprep_core.geo.antimeridian import unwrap_near, wrap_longitude

log = logging.getLogger(__name__)

RADAR_FREQUENCY = 5.405000454334350e9
RANGE_SAMPLING_RATE = 6.434523812571428e7


# ----------------------------------------------------------------------------- ground truth


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
    if isinstance(dem, str) and dem == "relief":
        return ReliefDem(_origin(spec))
    if isinstance(dem, int | float):
        return ConstantDem(float(dem))
    if isinstance(dem, str | Path):
        return read_raster_dem(str(dem))
    return dem


def s1_ground_truth(spec: S1DemoSpec) -> S1Truth:
    """The ground truth of ``spec`` (cheap: no image is generated)."""
    # point targets as wide as the product's resolution cell (6 m at 10 m spacing), so coarser modes sample them
    scene = DefaultScene(_origin(spec), POINT_TARGET_SIGMA_M * spec.pixel_spacing / 10.0)
    sigma: dict[str, Sigma0Fn]
    if spec.sigma0 is None and spec.radiometry == "gamma0":
        classes = LandClasses(_origin(spec))
        sigma = {pol: functools.partial(classes.gamma0, pol) for pol in spec.polarisations}
    elif spec.sigma0 is None:
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
    lon = unwrap_near(lon, spec.centre_lon)  # continuous across the antimeridian (past 180 there)
    footprint = tuple((float(a), float(b)) for a, b in zip(lon, lat, strict=True))
    default = spec.sigma0 is None and spec.radiometry == "sigma0"
    return S1Truth(
        spec=spec,
        dem=dem,
        point_targets=scene.point_targets() if default else (),
        bright_squares=scene.bright_squares() if default else (),
        footprint=footprint,
        _sigma0=sigma,
    )


_TERRAIN_CACHE: dict[str, TerrainTruth] = {}


def s1_terrain_truth(spec: S1DemoSpec) -> TerrainTruth:
    """The facet model of a ``radiometry="gamma0"`` spec: expected beta0, layover and shadow (cached per spec)."""
    if spec.radiometry != "gamma0":
        raise ConfigError("radiometry", spec.radiometry, "terrain truth exists for radiometry='gamma0' specs only")
    if spec.digest not in _TERRAIN_CACHE:
        g = spec.geometry
        incidence = incidence_lattice(g, np.array([(spec.lines - 1) / 2.0]), np.arange(spec.samples))[0]
        _TERRAIN_CACHE.clear()  # one at a time: the arrays are large
        _TERRAIN_CACHE[spec.digest] = terrain_truth(s1_ground_truth(spec), _origin(spec), incidence)
    return _TERRAIN_CACHE[spec.digest]


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
    g, mode = spec.geometry, spec.acquisition
    truth = s1_ground_truth(spec)
    luts = make_luts(spec)
    beta0 = s1_terrain_truth(spec).beta0 if spec.radiometry == "gamma0" else None
    dn = simulate_dn(spec, truth, luts, PixelLocator.build(g, truth.dem), beta0)
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
        header = s1_xml.Header(spec.mission, pol, start, stop, spec.absolute_orbit, spec.datatake_id,
                               1 if pol in ("VV", "HH") else 2, mode.family, mode.name)  # fmt: skip
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
            subswaths=() if mode.name == "IW" else tuple(split_subswaths(mode, spec.samples)),
        )  # fmt: skip
        files = {
            f"measurement/{stem}.tiff": ("s1Level1MeasurementSchema", oid),
            f"annotation/{stem}.xml": ("s1Level1ProductSchema", f"product{oid}"),
            f"annotation/calibration/calibration-{stem}.xml": ("s1Level1CalibrationSchema", f"calibration{oid}"),
            f"annotation/calibration/noise-{stem}.xml": ("s1Level1NoiseSchema", f"noise{oid}"),
        }
        software = f"Sentinel-1 IPF {spec.ipf_version} (senprep demo simulator)"
        write_measurement(
            safe / f"measurement/{stem}.tiff", dn[pol], gcps, f"{spec.mission} {mode.description}", software
        )
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
        footprint_latlon=tuple((lat, wrap_longitude(lon)) for lon, lat in truth.footprint),  # as ESA: [-180, 180]
        files=tuple(sorted(entries, key=lambda e: (e[1] != "s1Level1ProductSchema", e[0]))),
        mode=mode.family, swath=mode.name,
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
