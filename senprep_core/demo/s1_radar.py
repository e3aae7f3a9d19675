"""Radiometry of synthetic Sentinel-1 GRDs: calibration and noise LUTs, DN simulation, measurement TIFF.

See :mod:`senprep_core.demo.s1` for the forward model. The LUT values used to simulate DN are
the values written to the XML (rounded to 7 significant digits), interpolated bilinearly like
the chain does, so ``DN**2 / sigmaLUT**2`` gives back sigma0 up to DN quantisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from senprep_core.demo import s1_xml
from senprep_core.demo.s1_image import ImageGeometry, PixelLocator
from senprep_core.demo.s1_modes import split_subswaths
from senprep_core.demo.s1_orbit import incidence_and_elevation
from senprep_core.demo.s1_spec import S1DemoSpec, S1Truth
from senprep_core.s1.model import AzimuthNoiseBlock

_CAL_STEP = 200  # lines between calibration / noise vectors
_LUT_PIXEL_STEP = 40
_AZ_NOISE_STEP = 20
_BURST_PERIOD = 2.758  # seconds: period of the azimuth noise scalloping
_ROW_BLOCK = 256


# ----------------------------------------------------------------------------- LUTs


def _lut_lines(lines: int, beyond: bool) -> np.ndarray:
    """Vector lines every _CAL_STEP from 0: past the last line (calibration) or ending on it (noise)."""
    if beyond:
        return np.arange(0, lines - 1 + _CAL_STEP, _CAL_STEP)
    out = np.arange(0, lines, _CAL_STEP)
    return out if out[-1] == lines - 1 else np.append(out, lines - 1)


def _lut_pixels(samples: int) -> np.ndarray:
    out = np.arange(0, samples, _LUT_PIXEL_STEP)
    return out if out[-1] == samples - 1 else np.append(out, samples - 1)


def incidence_lattice(g: ImageGeometry, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Ellipsoid incidence angles (degrees) on the (lines x pixels) lattice."""
    ll, pp = np.meshgrid(lines.astype(np.float64), pixels.astype(np.float64), indexing="ij")
    lat, lon = g.geolocate(ll, pp, np.zeros(ll.shape))
    _, _, t_zd = g.range_and_time(ll, pp)
    pos, _ = g.orbit.state(t_zd)
    inc, _ = incidence_and_elevation(lat, lon, np.zeros(ll.shape), pos)
    return inc


def _nesz(spec: S1DemoSpec, pixels: np.ndarray) -> np.ndarray:
    """Linear noise-equivalent sigma0 along range: minimum mid-image, +3 dB at the edges."""
    if spec.nesz_db is None:
        return np.zeros(pixels.shape)
    u = (pixels - (spec.samples - 1) / 2.0) / ((spec.samples - 1) / 2.0)
    return 10.0 ** (spec.nesz_db / 10.0) * (1.0 + u**2)


@dataclass(frozen=True)
class Luts:
    """The annotated LUTs of one image (values exactly as written to the XML)."""

    calibration: s1_xml.LutVectors
    noise_range: s1_xml.LutVectors
    azimuth: tuple[AzimuthNoiseBlock, ...]


def make_luts(spec: S1DemoSpec) -> Luts:
    """Calibration vectors, noise range vectors and the azimuth noise block of ``spec`` (same for every pol)."""
    g = spec.geometry
    cal_lines, pixels = _lut_lines(spec.lines, beyond=True), _lut_pixels(spec.samples)
    theta = np.radians(incidence_lattice(g, cal_lines, pixels))
    beta = np.full(theta.shape, spec.beta0)
    cal = {
        "betaNought": s1_xml.lut_values(beta),
        "sigmaNought": s1_xml.lut_values(beta / np.sqrt(np.sin(theta))),
        "gamma": s1_xml.lut_values(beta / np.sqrt(np.tan(theta))),
        "dn": s1_xml.lut_values(np.full(theta.shape, spec.beta0 * 0.8472)),
    }
    noise_lines = _lut_lines(spec.lines, beyond=False)
    sigma_at_noise = _interp_lut(s1_xml.LutVectors(cal_lines, pixels, cal), "sigmaNought", noise_lines, pixels)
    noise_vals = s1_xml.lut_values(_nesz(spec, pixels)[None, :] * sigma_at_noise.astype(np.float64) ** 2)
    blocks: tuple[AzimuthNoiseBlock, ...] = ()
    if float(spec.ipf_version) >= 2.90:
        az_lines = np.arange(0, spec.lines, _AZ_NOISE_STEP)
        az_lines = az_lines if az_lines[-1] == spec.lines - 1 else np.append(az_lines, spec.lines - 1)
        swaths = split_subswaths(spec.acquisition, spec.samples)
        blocks = tuple(
            AzimuthNoiseBlock(0, spec.lines - 1, first, last, az_lines, s1_xml.lut_values(
                _scalloping(az_lines, g.azimuth_time_interval, (spec.seed % 7 + 3 * k) / 7.0)), swath=swath)
            for k, (swath, first, last) in enumerate(swaths)
        )  # fmt: skip
    return Luts(
        calibration=s1_xml.LutVectors(cal_lines, pixels, cal),
        noise_range=s1_xml.LutVectors(noise_lines, pixels, {"noise": noise_vals}),
        azimuth=blocks,
    )


def _scalloping(lines: np.ndarray, ati: float, phase_turns: float) -> np.ndarray:
    """A burst-like azimuth noise gain of +-6 % along ``lines`` (each sub-swath with its own phase)."""
    phase = phase_turns * 2 * math.pi
    return 1.0 + 0.06 * np.cos(2 * math.pi * lines * ati / _BURST_PERIOD + phase)


def _interp_lut(luts: s1_xml.LutVectors, name: str, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of sparse vectors (shared pixel positions) at lines x pixels, float64.

    Linear along each vector's pixels, then linear between the vectors bracketing each line;
    constant outside (the convention of the chain and of xarray-sentinel).
    """
    values = luts.values[name]
    along = np.stack([np.interp(pixels, luts.pixels, row) for row in values])  # (m, n_pixels)
    pos = np.interp(lines.astype(np.float64), luts.lines.astype(np.float64), np.arange(luts.lines.size))
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(luts.lines.size - 2, 0))
    i1 = np.minimum(i0 + 1, luts.lines.size - 1)
    w = (pos - i0)[:, None]
    return along[i0] * (1.0 - w) + along[i1] * w


def _noise_power(luts: Luts, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    power = _interp_lut(luts.noise_range, "noise", lines, pixels)
    for b in luts.azimuth:
        gain = np.interp(lines.astype(np.float64), b.lines.astype(np.float64), b.values)
        rows = (lines >= b.first_line) & (lines <= b.last_line)
        cols = (pixels >= b.first_pixel) & (pixels <= b.last_pixel)
        power[np.ix_(rows, cols)] *= gain[rows][:, None]
    return power


def _border_width(spec: S1DemoSpec, lines: np.ndarray) -> np.ndarray:
    """No-data columns at near range per line (3 to 7, smooth along azimuth)."""
    if not spec.nodata_border:
        return np.zeros(lines.shape, dtype=np.int64)
    return np.round(5.0 + 2.0 * np.sin(2 * math.pi * lines / 900.0 + spec.seed)).astype(np.int64)


def simulate_dn(
    spec: S1DemoSpec,
    truth: S1Truth,
    luts: Luts,
    locator: PixelLocator,
    beta0: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The uint16 DN image (lines x samples) of every polarisation of ``spec`` (see the forward model).

    ``beta0``: the expected beta0 per polarisation and pixel (terrain radiometry) instead of sigma0(lat, lon).
    """
    pixels = np.arange(spec.samples)
    out = {pol: np.zeros((spec.lines, spec.samples), dtype=np.uint16) for pol in spec.polarisations}
    rngs = {pol: np.random.default_rng([spec.seed, i]) for i, pol in enumerate(spec.polarisations)}
    far = spec.samples - 2 if spec.nodata_border else spec.samples
    for start in range(0, spec.lines, _ROW_BLOCK):
        stop = min(spec.lines, start + _ROW_BLOCK)
        rows = np.arange(start, stop)
        if beta0 is None:
            lat, lon, _ = locator.locate(start, stop)
        sigma_lut2 = _interp_lut(luts.calibration, "sigmaNought", rows, pixels) ** 2
        beta_lut2 = _interp_lut(luts.calibration, "betaNought", rows, pixels) ** 2 if beta0 is not None else None
        noise = _noise_power(luts, rows, pixels)
        valid = (pixels[None, :] >= _border_width(spec, rows)[:, None]) & (pixels[None, :] < far)
        for pol in spec.polarisations:
            if beta0 is not None and beta_lut2 is not None:
                power = beta0[pol][start:stop] * beta_lut2 + noise
            else:
                power = truth.sigma0(pol, lat, lon) * sigma_lut2 + noise
            if math.isfinite(spec.looks):
                power *= rngs[pol].standard_gamma(spec.looks, size=power.shape) / spec.looks
            dn = np.clip(np.rint(np.sqrt(power)), 1, 65535)
            out[pol][start:stop] = np.where(valid, dn, 0).astype(np.uint16)
    return out


def write_measurement(path: Path, dn: np.ndarray, gcps: np.ndarray, description: str, software: str) -> None:
    """Write a measurement GeoTIFF: uint16, no geotransform, the tie points as GCPs (EPSG:4326).

    ``gcps`` rows are (line, pixel, lat, lon, height), as the annotation's geolocation grid.
    """
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    points = [
        GroundControlPoint(row=float(r[0]), col=float(r[1]), x=float(r[3]), y=float(r[2]), z=float(r[4])) for r in gcps
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": dn.shape[1], "height": dn.shape[0], "count": 1, "dtype": "uint16"}
    with rasterio.open(path, "w", gcps=points, crs=CRS.from_epsg(4326), **profile) as dst:
        dst.write(dn, 1)
        dst.update_tags(TIFFTAG_IMAGEDESCRIPTION=description, TIFFTAG_SOFTWARE=software)
