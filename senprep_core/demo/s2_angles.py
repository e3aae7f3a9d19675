"""Sun and viewing angles of a synthetic Sentinel-2 tile: the node grids its MTD_TL.xml holds, and the truth.

The grid follows real tile metadata: nodes every 5000 m from the tile's upper-left corner, enough of them
to pass the tile's right and bottom edges (23 x 23 for a 109.8 km tile). Values are analytic functions
of the node's offsets ``dx`` (east) and ``dy`` (south) from that corner, in metres, rounded to 1e-4
degree (the files hold exactly these numbers):

- **sun**: zenith ``z0 + 4e-5 dy - 1e-5 dx`` (``z0`` the noon zenith of 56 N on the sensing day), azimuth
  ``160 + 1e-4 dx + 1e-5 dy``;
- **viewing**, per band (``bandId`` k) and detector d: detectors are strips of the across-track coordinate
  ``s = dx + 0.2 dy``, :data:`DETECTOR_WIDTH` wide, overlapping by :data:`DETECTOR_OVERLAP` on each side;
  a detector has values only at the nodes of its strip (NaN elsewhere). Zenith ``2 + 3e-4 s + 0.04 k``
  (+0.25 for even detectors: the staggered focal plane), azimuth ``100 - 2e-4 s + 1e-4 dy + 0.3 k``
  (+1 for even detectors).

The truth (:func:`angle_truth`) combines a band's detectors as senprep's reader does (in file order,
ascending detector ids, the last detector with a value wins), takes the mean view angles as the node mean
over the 13 bands, and interpolates the node values bilinearly (``numpy.interp`` along each axis) at the
pixel centres; NaN beyond the outer nodes. No azimuth here crosses 0/360.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

#: Node spacing (metres), as in real products.
ANGLE_STEP = 5000.0
#: Width (metres) of a demo detector's strip across the track, and the overlap with each neighbour.
DETECTOR_WIDTH = 5500.0
DETECTOR_OVERLAP = 500.0
_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


@dataclass(frozen=True)
class DemoAngles:
    """The angle grids of one synthetic tile (degrees, (n, n), node (i, j) at ``(ulx + j*step, uly - i*step)``).

    ``view`` maps (bandId, detectorId) to the (zenith, azimuth) grids of that detector, NaN off its strip;
    keys are in file order (band, then ascending detector).
    """

    ulx: float
    uly: float
    step: float
    sun_zenith: np.ndarray
    sun_azimuth: np.ndarray
    view: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]

    @property
    def size(self) -> int:
        """Nodes per side."""
        return int(self.sun_zenith.shape[0])

    def band_grids(self, band_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(zenith, azimuth) of a band, its detectors combined (the last one with a value wins)."""
        zen = np.full(self.sun_zenith.shape, np.nan)
        az = np.full(self.sun_zenith.shape, np.nan)
        for (band, _detector), (z, a) in self.view.items():
            if band == band_id:
                zen = np.where(np.isfinite(z), z, zen)
                az = np.where(np.isfinite(a), a, az)
        return zen, az

    def nodes(self, name: str) -> np.ndarray:
        """The node values of a canonical angle band (``sun_zenith``, ``view_azimuth_mean``, ``view_zenith_B8A``)."""
        if name in ("sun_zenith", "sun_azimuth"):
            return self.sun_zenith if name == "sun_zenith" else self.sun_azimuth
        index = 1 if name.startswith("view_azimuth") else 0
        if name.endswith("_mean"):
            return np.mean([self.band_grids(k)[index] for k in range(len(_BANDS))], axis=0)
        return self.band_grids(_BANDS.index(name.rsplit("_", 1)[-1]))[index]


def _noon_zenith(when: datetime, latitude: float = 56.0) -> float:
    declination = -23.44 * math.cos(2 * math.pi * (when.timetuple().tm_yday + 10) / 365.0)
    return latitude - declination


def demo_angles(ulx: float, uly: float, width_m: float, sensing_time: datetime) -> DemoAngles:
    """The angle grids of a tile of ``width_m`` metres whose upper-left corner is (ulx, uly)."""
    n = int(width_m // ANGLE_STEP) + 2
    offsets = np.arange(n) * ANGLE_STEP
    dx, dy = np.meshgrid(offsets, offsets)
    z0 = _noon_zenith(sensing_time)
    sun_zenith = np.round(z0 + 4e-5 * dy - 1e-5 * dx, 4)
    sun_azimuth = np.round(160.0 + 1e-4 * dx + 1e-5 * dy, 4)
    s = dx + 0.2 * dy
    detectors = int(s.max() // DETECTOR_WIDTH) + 1
    view: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for k in range(len(_BANDS)):
        for d in range(1, detectors + 1):
            lo, hi = (d - 1) * DETECTOR_WIDTH - DETECTOR_OVERLAP, d * DETECTOR_WIDTH + DETECTOR_OVERLAP
            strip = (s >= lo) & (s < hi)
            even = d % 2 == 0
            zen = np.round(2.0 + 3e-4 * s + 0.04 * k + (0.25 if even else 0.0), 4)
            az = np.round(100.0 - 2e-4 * s + 1e-4 * dy + 0.3 * k + (1.0 if even else 0.0), 4)
            view[(k, d)] = (np.where(strip, zen, np.nan), np.where(strip, az, np.nan))
    return DemoAngles(float(ulx), float(uly), ANGLE_STEP, sun_zenith, sun_azimuth, view)


def angle_truth(angles: DemoAngles, name: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The expected value of angle band ``name`` at the pixel centres ``xs`` (columns) x ``ys`` (rows), in
    the tile CRS: (len(ys), len(xs)) float64, NaN beyond the outer nodes."""
    nodes = angles.nodes(name)
    positions = np.arange(angles.size) * angles.step
    dx = np.asarray(xs, dtype=np.float64) - angles.ulx
    dy = angles.uly - np.asarray(ys, dtype=np.float64)
    along = np.array([np.interp(dx, positions, row, left=np.nan, right=np.nan) for row in nodes])
    out = np.array([np.interp(dy, positions, col, left=np.nan, right=np.nan) for col in along.T]).T
    return np.asarray(out)
