"""Value objects for Sentinel-1 GRD products: parsed metadata the S1 chain works from.

Times inside the chain are float64 seconds since one epoch per product (``S1Metadata.epoch``,
the first line time of the first image, UTC); this keeps microsecond precision and plain
numpy arithmetic. Slant-range times are two-way, in seconds, as in the annotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from senprep_core.productfs import ProductLocation

SPEED_OF_LIGHT = 299_792_458.0


@dataclass(frozen=True)
class OrbitStateVectors:
    """Orbit samples in the Earth-fixed frame (ITRF/WGS84 ECEF).

    ``times`` are seconds since ``epoch``; ``positions`` and ``velocities`` are (n, 3) in m and m/s.
    ``source`` says where they came from: ``"annotation"``, ``"POEORB:<file name>"`` or
    ``"RESORB:<file name>"``.
    """

    epoch: datetime
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    source: str = "annotation"


@dataclass(frozen=True)
class GeolocationGrid:
    """The annotation's geolocation tie points, flattened to 1-D arrays of equal length.

    ``azimuth_time`` is seconds since the product epoch, ``slant_range_time`` two-way seconds,
    heights ellipsoidal (WGS84) metres, angles degrees.
    """

    line: np.ndarray
    pixel: np.ndarray
    azimuth_time: np.ndarray
    slant_range_time: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    height: np.ndarray
    incidence_angle: np.ndarray
    elevation_angle: np.ndarray


@dataclass(frozen=True)
class CoordinateConversion:
    """Slant-range / ground-range polynomial records along azimuth (GRD ``coordinateConversionList``).

    Record ``k`` holds for azimuth time ``azimuth_time[k]`` (seconds since epoch):
    ``ground_range = sum(srgr[k, i] * (slant_range - sr0[k]) ** i)`` and
    ``slant_range = sum(grsr[k, i] * (ground_range - gr0[k]) ** i)``, metres (ESA's naming: srgr
    converts slant range to ground range). Use the record
    nearest in azimuth time (interpolating between records is wrong by up to 1.6 px).
    """

    azimuth_time: np.ndarray
    slant_range_time: np.ndarray
    sr0: np.ndarray
    srgr: np.ndarray
    gr0: np.ndarray
    grsr: np.ndarray


@dataclass(frozen=True)
class SparseLUT:
    """A look-up table sampled on a sparse line x pixel grid (calibration or range noise vectors).

    ``lines`` (m,) are image lines; ``pixels[i]`` and ``values[i]`` are the i-th vector's sample
    positions and values (vectors may differ in length, as in real noise annotations).
    """

    lines: np.ndarray
    pixels: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class AzimuthNoiseBlock:
    """One block of the azimuth noise vector (IPF >= 2.90): a gain per line over a pixel range.

    Lines and pixels are inclusive bounds in image coordinates; ``lines``/``values`` sample the
    azimuth profile inside the block.
    """

    first_line: int
    last_line: int
    first_pixel: int
    last_pixel: int
    lines: np.ndarray
    values: np.ndarray
    swath: str = ""  # e.g. "IW1"; the azimuth vectors of an IW GRD come one per sub-swath


@dataclass(frozen=True)
class Calibration:
    """Calibration LUTs of one image: ``luts`` maps ``sigma0``/``beta0``/``gamma0``/``dn`` to a SparseLUT.

    Calibrated intensity is ``DN**2 / lut**2`` (Sentinel-1 product specification).
    """

    luts: dict[str, SparseLUT]
    absolute_calibration_constant: float = 1.0


@dataclass(frozen=True)
class Noise:
    """Thermal noise of one image: range vectors, and azimuth blocks from IPF 2.90 on (else empty).

    The noise power to subtract from ``DN**2`` is ``range(line, pixel) * azimuth(line, pixel)``
    (azimuth is 1 where no block covers a pixel).
    """

    range: SparseLUT
    azimuth: tuple[AzimuthNoiseBlock, ...] = ()


@dataclass(frozen=True)
class S1Image:
    """One polarisation of a GRD: its files and the annotation values the chain needs."""

    polarisation: str  # "VV", "VH", "HH", "HV"
    swath: str  # "IW", "EW", "S1".."S6"
    measurement: str  # member path of the measurement TIFF
    annotation: str  # member path of the annotation XML
    calibration_file: str | None
    noise_file: str | None
    lines: int
    samples: int
    first_line_time: float  # seconds since epoch
    last_line_time: float
    azimuth_time_interval: float  # seconds per line
    range_pixel_spacing: float  # metres (ground range for GRD)
    azimuth_pixel_spacing: float
    slant_range_time: float  # two-way, near range (first pixel), seconds
    radar_frequency: float  # Hz
    range_sampling_rate: float  # Hz
    incidence_angle_mid: float  # degrees
    bistatic_delay_applied: bool
    pass_direction: str  # "ASCENDING" | "DESCENDING"
    orbit: OrbitStateVectors
    geolocation: GeolocationGrid
    conversion: CoordinateConversion
    calibration: Calibration | None
    noise: Noise | None


@dataclass(frozen=True)
class S1Metadata:
    """A parsed Sentinel-1 GRD product (manifest + per-polarisation annotation, calibration, noise)."""

    product_id: str
    location: ProductLocation
    mission: str  # "S1A" | "S1B" | "S1C" | "S1D"
    mode: str  # "IW" | "EW" | "SM" (stripmap swaths S1..S6 report "SM")
    product_type: str  # "GRD"
    resolution_class: str  # "H" | "M" | "F"
    polarisations: tuple[str, ...]
    orbit_direction: str  # "ASCENDING" | "DESCENDING"
    absolute_orbit: int
    relative_orbit: int
    slice_number: int | None
    start_time: datetime  # UTC, aware
    stop_time: datetime
    footprint_wkt: str  # lon/lat polygon
    ipf_version: str  # e.g. "003.40"
    epoch: datetime  # UTC, aware; time origin of every float time in the images
    images: dict[str, S1Image] = field(default_factory=dict)

    @property
    def ipf_number(self) -> float:
        """The IPF version as a number (``"002.91"`` -> 2.91)."""
        try:
            return float(self.ipf_version)
        except ValueError:
            return 0.0

    def image(self, polarisation: str) -> S1Image:
        """The image of one polarisation (``"VV"``...); raises KeyError naming what exists."""
        pol = polarisation.upper()
        if pol not in self.images:
            raise KeyError(f"{self.product_id} has no {pol} image; it has {', '.join(self.images) or 'none'}")
        return self.images[pol]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``senprep inspect`` prints)."""
        return {
            "product_id": self.product_id,
            "mission": self.mission,
            "mode": self.mode,
            "product_type": self.product_type,
            "resolution_class": self.resolution_class,
            "polarisations": list(self.polarisations),
            "orbit_direction": self.orbit_direction,
            "absolute_orbit": self.absolute_orbit,
            "relative_orbit": self.relative_orbit,
            "slice_number": self.slice_number,
            "start_time": self.start_time.isoformat(),
            "stop_time": self.stop_time.isoformat(),
            "footprint_wkt": self.footprint_wkt,
            "ipf_version": self.ipf_version,
            "images": {
                pol: {
                    "swath": im.swath,
                    "lines": im.lines,
                    "samples": im.samples,
                    "range_pixel_spacing": im.range_pixel_spacing,
                    "azimuth_pixel_spacing": im.azimuth_pixel_spacing,
                    "calibration": im.calibration_file is not None,
                    "noise": im.noise_file is not None,
                    "orbit": im.orbit.source,
                }
                for pol, im in self.images.items()
            },
        }
