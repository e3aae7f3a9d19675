"""Terrain radiometry of synthetic Sentinel-1 GRDs: gamma0 per land class -> beta0 through the facets' areas.

With ``S1DemoSpec(radiometry="gamma0")`` the truth functions give gamma0 (backscatter per unit
area perpendicular to the look direction, what terrain flattening recovers), and the image is
formed from the terrain instead of from sigma0 directly:

1. facets: the DEM is sampled on its own vertex grid in the scene's local metres
   (:class:`~senprep_core.demo.s1_scene.LocalFrame`), ``OVERSAMPLING`` vertices per image pixel
   spacing; every cell is cut into two triangles;
2. each triangle's radar position (line, pixel) comes from the simulator's own range-Doppler
   solver (:meth:`ImageGeometry.radar_coordinates`, exact on a lattice, quadratic in height,
   bilinear between nodes), its look vector from the satellite position at its zero-Doppler
   time;
3. visibility is traced per vertex in the zero-Doppler plane: vertices of one azimuth bin are
   ordered by their Earth-centred angle from the satellite's nadir; a vertex is in **shadow**
   when a nearer one is seen under a larger off-nadir angle (it hides it), and in **layover**
   when its slant range is not monotonic with that order (a nearer vertex is farther in range
   or a farther one nearer);
4. a triangle's illuminated area is its area projected perpendicular to the look direction,
   ``max(0, n . l) / 2`` (``n`` the cross product of two edges), times the fraction of its
   vertices not in shadow; ``gamma0 * area`` is splatted bilinearly into the radar pixels and
   divided by the pixel's beta0 reference area ``d_az * d_gr * sin(theta_ellipsoid)``: that is
   the pixel's expected beta0, which the DN simulation then uses
   (:func:`~senprep_core.demo.s1_radar.simulate_dn`).

The layover and shadow flags of the facet cells are the truth a chain's layover/shadow layer is
checked against (:meth:`TerrainTruth.flags`). The ``"relief"`` DEM preset has slopes to ±30°
(smooth hills) and a steep north-south ridge (74° faces) that lays over on the face towards the
sensor and casts shadow behind the other. The default gamma0 map in this mode is a checkerboard
of three land classes (:class:`LandClasses`), so every class covers every slope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from senprep_core.demo.s1_image import ImageGeometry
from senprep_core.demo.s1_orbit import geodetic_to_ecef, zero_doppler_time
from senprep_core.demo.s1_scene import LocalFrame
from senprep_core.demo.s1_spec import S1DemoSpec, S1Truth

OVERSAMPLING = 3  # facet vertices per image pixel spacing
LATTICE = 24  # vertices between exactly solved radar positions
SHADOW_TOLERANCE_M = 2.0  # a vertex hidden by less than this (m across the ray) is not in shadow
LAYOVER_TOLERANCE_M = 2.0  # slant-range overlap (m) below which nothing is in layover
MARGIN_M = 800.0  # facets beyond the image footprint (m): relief lays over and casts shadow into it
STRIP_ROWS = 256  # vertex rows of triangles handled at once (bounds memory)

#: (name, VV / HH gamma0, VH / HV gamma0) of the land classes
CLASSES: tuple[tuple[str, float, float], ...] = (
    ("forest", 0.15, 0.04),
    ("grassland", 0.06, 0.012),
    ("bare soil", 0.025, 0.004),
)
CLASS_SQUARE_M = 600.0

# relief: base height, Gaussian hills (east, north, amplitude, sigma; max slope 0.607 A / s) and the ridge
RELIEF_BASE = 200.0
_RELIEF_HILLS: tuple[tuple[float, float, float, float], ...] = (
    (-900.0, 900.0, 400.0, 420.0),  # 30 degrees
    (900.0, -900.0, 300.0, 315.0),  # 30 degrees
    (-1000.0, -1000.0, 250.0, 500.0),  # 17 degrees
)
# ridge: faces at east x1 and x2 (logistic, width w: max slope A / 4 w = 74 degrees), north extent y1..y2
_RIDGE = {"x1": -250.0, "x2": 250.0, "y1": -500.0, "y2": 500.0, "height": 350.0, "w": 25.0, "w_north": 120.0}


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class ReliefDem:
    """The ``"relief"`` preset: ellipsoidal heights (m) around ``frame``'s origin (see the module docstring)."""

    frame: LocalFrame

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        x, y = self.frame.to_local(lat, lon)
        h = np.full(x.shape, RELIEF_BASE)
        for cx, cy, amp, sig in _RELIEF_HILLS:
            h += amp * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sig**2)
        r = _RIDGE
        across = _logistic((x - r["x1"]) / r["w"]) - _logistic((x - r["x2"]) / r["w"])
        along = _logistic((y - r["y1"]) / r["w_north"]) - _logistic((y - r["y2"]) / r["w_north"])
        return h + r["height"] * across * along


@dataclass(frozen=True)
class LandClasses:
    """Gamma0 per land class: a checkerboard of ``CLASS_SQUARE_M`` squares cycling through :data:`CLASSES`."""

    frame: LocalFrame

    def class_index(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        x, y = self.frame.to_local(lat, lon)
        i = np.floor(x / CLASS_SQUARE_M).astype(np.int64)
        j = np.floor(y / CLASS_SQUARE_M).astype(np.int64)
        return np.asarray((i + 2 * j) % len(CLASSES))

    def gamma0(self, pol: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Linear gamma0 of polarisation ``pol`` at geodetic points."""
        column = 1 if pol.upper() in ("VV", "HH") else 2
        values = np.array([c[column] for c in CLASSES])
        return np.asarray(values[self.class_index(lat, lon)], dtype=np.float64)


@dataclass(frozen=True)
class TerrainTruth:
    """What the facet model produced: expected beta0 per radar pixel, and layover / shadow per facet cell."""

    frame: LocalFrame
    east0: float  #: local east (m) of vertex column 0
    north0: float  #: local north (m) of vertex row 0 (rows run southwards)
    step: float  #: vertex spacing (m)
    beta0: Mapping[str, np.ndarray]  #: (lines, samples) expected beta0 per polarisation (no noise, no speckle)
    layover: np.ndarray  #: (rows, cols) bool per facet cell
    shadow: np.ndarray  #: (rows, cols) bool per facet cell

    def flags(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layover and shadow of the facet cells holding geodetic points (False outside)."""
        x, y = self.frame.to_local(lat, lon)
        col = np.floor((x - self.east0) / self.step).astype(np.int64)
        row = np.floor((self.north0 - y) / self.step).astype(np.int64)
        rows, cols = self.layover.shape
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        r, c = np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)
        return self.layover[r, c] & inside, self.shadow[r, c] & inside


@dataclass(frozen=True)
class _Vertices:
    """The facet vertex grid: local metres, geodetic coordinates, heights, radar geometry."""

    east: np.ndarray  # (nx,)
    north: np.ndarray  # (ny,)
    lat: np.ndarray  # (ny, nx)
    lon: np.ndarray
    h: np.ndarray
    line: np.ndarray
    pixel: np.ndarray
    satellite: np.ndarray  # (ny, nx, 3) ECEF at the zero-Doppler time

    def rows(self, start: int, stop: int) -> _Vertices:
        """The vertex rows [start, stop)."""
        return _Vertices(self.east, self.north[start:stop], *(a[start:stop] for a in (
            self.lat, self.lon, self.h, self.line, self.pixel, self.satellite)))  # fmt: skip


def _vertex_grid(truth: S1Truth, frame: LocalFrame, step: float) -> tuple[np.ndarray, np.ndarray]:
    lon = np.array([p[0] for p in truth.footprint])
    lat = np.array([p[1] for p in truth.footprint])
    x, y = frame.to_local(lat, lon)
    e0 = math.floor((float(x.min()) - MARGIN_M) / step) * step
    n0 = math.ceil((float(y.max()) + MARGIN_M) / step) * step
    east = e0 + step * np.arange(math.ceil((float(x.max()) + MARGIN_M - e0) / step) + 1)
    north = n0 - step * np.arange(math.ceil((n0 - float(y.min()) + MARGIN_M) / step) + 1)
    return east, north


def _lattice(n: int) -> np.ndarray:
    idx = np.arange(0, n, LATTICE)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _bilinear(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, ny: int, nx: int) -> np.ndarray:
    r = np.interp(np.arange(ny), rows, np.arange(rows.size))
    c = np.interp(np.arange(nx), cols, np.arange(cols.size))
    r0 = np.minimum(np.floor(r).astype(np.int64), rows.size - 2)
    c0 = np.minimum(np.floor(c).astype(np.int64), cols.size - 2)
    wr, wc = (r - r0)[:, None], (c - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - wc) + coarse[r0][:, c0 + 1] * wc
    bottom = coarse[r0 + 1][:, c0] * (1 - wc) + coarse[r0 + 1][:, c0 + 1] * wc
    return np.asarray(top * (1 - wr) + bottom * wr)


def _vertices(g: ImageGeometry, truth: S1Truth, frame: LocalFrame, step: float) -> _Vertices:
    east, north = _vertex_grid(truth, frame, step)
    lat, lon = frame.to_lonlat_arrays(*np.meshgrid(east, north))[::-1]
    h = np.asarray(truth.dem(lat, lon), dtype=np.float64)
    rows, cols = _lattice(north.size), _lattice(east.size)
    sub = np.ix_(rows, cols)
    h_lo, h_hi = float(h.min()), float(h.max())
    mid, half = (h_lo + h_hi) / 2.0, max((h_hi - h_lo) / 2.0, 1.0)
    levels = [g.radar_coordinates(lat[sub], lon[sub], np.full(lat[sub].shape, mid + k * half)) for k in (-1, 0, 1)]
    u = (h - mid) / half
    coords = []
    for which in (0, 1):
        low, centre, high = (lv[which] for lv in levels)
        a0, a1, a2 = (_bilinear(c, rows, cols, *h.shape) for c in (centre, (high - low) / 2, (high + low) / 2 - centre))
        coords.append(a0 + u * (a1 + u * a2))
    xyz = geodetic_to_ecef(lat[sub], lon[sub], np.full(lat[sub].shape, mid))
    pos, _ = g.orbit.state(zero_doppler_time(g.orbit, xyz, g.last_line_time / 2.0))
    satellite = np.stack([_bilinear(pos[..., k], rows, cols, *h.shape) for k in range(3)], axis=-1)
    return _Vertices(east, north, lat, lon, h, coords[0], coords[1], satellite)


def _max_before(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Running maximum of the earlier values within each group (values sorted by group, then order)."""
    out = np.full(values.shape, -np.inf)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], values.size]
    for s, e in zip(starts, ends, strict=True):
        if e - s > 1:
            out[s + 1 : e] = np.maximum.accumulate(values[s : e - 1])
    return out


def _visibility(v: _Vertices, bins_per_line: int) -> tuple[np.ndarray, np.ndarray]:
    """Layover and shadow of every vertex, traced in the zero-Doppler plane (see the module docstring)."""
    p = geodetic_to_ecef(v.lat, v.lon, v.h).reshape(-1, 3)
    s = v.satellite.reshape(-1, 3)
    to_point = p - s
    slant = np.linalg.norm(to_point, axis=-1)
    s_norm = np.linalg.norm(s, axis=-1)
    off_nadir = np.arccos(np.clip(-np.einsum("ij,ij->i", to_point, s) / (slant * s_norm), -1.0, 1.0))
    from_nadir = np.arccos(np.clip(np.einsum("ij,ij->i", p, s) / (np.linalg.norm(p, axis=-1) * s_norm), -1.0, 1.0))
    bins = np.floor(v.line.ravel() * bins_per_line)
    order = np.lexsort((from_nadir, bins))
    groups = bins[order]
    angle, rng = off_nadir[order], slant[order]
    shadow = angle < _max_before(angle, groups) - SHADOW_TOLERANCE_M / rng
    nearer_max = _max_before(rng, groups)
    farther_min = -_max_before(-rng[::-1], -groups[::-1])[::-1]
    layover = (rng < nearer_max - LAYOVER_TOLERANCE_M) | (rng > farther_min + LAYOVER_TOLERANCE_M)
    out_l = np.empty(bins.size, dtype=bool)
    out_s = np.empty(bins.size, dtype=bool)
    out_l[order], out_s[order] = layover, shadow
    return out_l.reshape(v.h.shape), out_s.reshape(v.h.shape)


def _look_enu(v: _Vertices) -> np.ndarray:
    """Unit vectors from each vertex towards the satellite in local east/north/up, (ny, nx, 3)."""
    d = v.satellite - geodetic_to_ecef(v.lat, v.lon, v.h)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    phi, lam = np.radians(v.lat), np.radians(v.lon)
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return np.stack([-sl * x + cl * y, -sp * cl * x - sp * sl * y + cp * z, cp * cl * x + cp * sl * y + sp * z], -1)


_CORNERS = {  # cell corner -> (rows, cols) slices of the vertex arrays, (east, north) offset in steps
    "nw": ((slice(None, -1), slice(None, -1)), (0, 0)),
    "ne": ((slice(None, -1), slice(1, None)), (1, 0)),
    "sw": ((slice(1, None), slice(None, -1)), (0, -1)),
    "se": ((slice(1, None), slice(1, None)), (1, -1)),
}


def _corners(a: np.ndarray) -> list[np.ndarray]:
    """Values at the four corners of every cell."""
    return [a[where] for where, _ in _CORNERS.values()]


def _triangles(v: _Vertices, step: float, shadow: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Per triangle (two per cell): illuminated area (m²), centroid line, pixel, lat, lon."""
    look = _look_enu(v)
    out = []
    for corners in (("nw", "ne", "se"), ("nw", "se", "sw")):
        where = [_CORNERS[c][0] for c in corners]
        points = []
        for c, w in zip(corners, where, strict=True):
            de, dn = _CORNERS[c][1]
            height = v.h[w]
            points.append(np.stack([np.full(height.shape, de * step), np.full(height.shape, dn * step), height], -1))
        normal = np.cross(points[1] - points[0], points[2] - points[0])
        normal *= np.sign(normal[..., 2:3])  # upwards
        look_c = sum(look[w] for w in where) / 3.0
        look_c /= np.linalg.norm(look_c, axis=-1, keepdims=True)
        lit = sum(1.0 - shadow[w].astype(np.float64) for w in where) / 3.0
        area = np.clip(np.einsum("...k,...k->...", normal, look_c), 0.0, None) / 2.0 * lit
        centroid = [sum(a[w] for w in where) / 3.0 for a in (v.line, v.pixel, v.lat, v.lon)]
        out.append((area, *centroid))
    return out


def _splat(shape: tuple[int, int], line: np.ndarray, pixel: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out = np.zeros(shape[0] * shape[1])
    r, c, w = line.ravel(), pixel.ravel(), weights.ravel()
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    for dr, dc, k in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        out += np.bincount(rr[ok] * shape[1] + cc[ok], weights=(w * k)[ok], minlength=out.size)
    return out.reshape(shape)


def terrain_truth(truth: S1Truth, frame: LocalFrame, incidence: np.ndarray) -> TerrainTruth:
    """Run the facet model of ``truth`` (its spec, DEM and gamma0 functions).

    ``incidence``: the ellipsoid incidence angle (degrees) of every image column.
    """
    spec = truth.spec
    g = spec.geometry
    step = spec.pixel_spacing / OVERSAMPLING
    v = _vertices(g, truth, frame, step)
    layover, shadow = _visibility(v, OVERSAMPLING)
    shape = (spec.lines, spec.samples)
    a_beta = spec.pixel_spacing * spec.pixel_spacing * np.sin(np.radians(incidence))[None, :]
    totals = {pol: np.zeros(shape) for pol in spec.polarisations}
    for start in range(0, v.h.shape[0] - 1, STRIP_ROWS):  # cells of vertex rows [start, stop)
        stop = min(v.h.shape[0], start + STRIP_ROWS + 1)
        for area, line, pixel, lat, lon in _triangles(v.rows(start, stop), step, shadow[start:stop]):
            for pol in spec.polarisations:
                totals[pol] += _splat(shape, line, pixel, area * truth.sigma0(pol, lat, lon))
    beta0 = {pol: total / a_beta for pol, total in totals.items()}
    cell_layover = sum(c.astype(np.int64) for c in _corners(layover)) >= 2
    cell_shadow = sum(c.astype(np.int64) for c in _corners(shadow)) >= 2
    return TerrainTruth(frame, float(v.east[0]), float(v.north[0]), step, beta0,
                        np.asarray(cell_layover), np.asarray(cell_shadow))  # fmt: skip


def relief_spec(pass_direction: str = "ASCENDING", **changes: Any) -> S1DemoSpec:
    """A small (4 km) dual-polarisation GRD over the ``"relief"`` DEM with terrain radiometry (land classes)."""
    base = S1DemoSpec(
        start_time=datetime(2022, 6, 7, 17, 41, 35)
        if pass_direction == "ASCENDING"
        else datetime(2022, 6, 8, 6, 31, 5),
        centre_lon=-4.25,
        centre_lat=55.86,
        pass_direction=pass_direction,
        incidence_near=36.0,
        lines=400,
        samples=400,
        dem="relief",
        radiometry="gamma0",
        seed=17,
    )
    return replace(base, **changes)
