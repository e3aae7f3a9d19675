"""Sun and viewing angles of a Sentinel-2 tile: its metadata's angle grids, parsed and put on any grid.

Pure functions (the caller reads the file): :func:`parse_tile_angles` and :func:`angles_on_grid`.

The tile metadata (``MTD_TL.xml``, or ``metadata.xml`` of an AWS tile folder) holds, under
``Geometric_Info/Tile_Angles``:

- ``Sun_Angles_Grid``: ``Zenith`` and ``Azimuth``, each with ``COL_STEP`` / ``ROW_STEP`` (5000 m) and a
  ``Values_List`` of ``VALUES`` rows (23 x 23 for a 109.8 km tile);
- ``Viewing_Incidence_Angles_Grids`` (``bandId`` 0..12, ``detectorId`` 1..12): the same layout for one
  band as seen by one detector, NaN at the nodes outside that detector's footprint;
- ``Mean_Sun_Angle`` and ``Mean_Viewing_Incidence_Angle_List``: tile means (not used here).

**Node positions.** Node (row i, column j) lies at ``(ULX + j * COL_STEP, ULY - i * ROW_STEP)`` in the
tile's CRS, where ULX/ULY is the upper-left *corner* of the tile (``Tile_Geocoding/Geoposition``): the
first node is that corner, and the last row and column lie 200 m beyond the tile's bottom and right edges
(ESA's Sentinel-2 technical manager on the STEP forum, "View and sun angles grid in Sentinel-2 data",
2024; no PSD states it). SNAP's reader instead shows each value as a 5 km pixel whose upper-left corner
is the node (and drops the last row and column), which once resampled puts the value half a step
(2.5 km) further right and down: on tile 29UNU that moves the sun zenith by ~0.03 degree and the view
zenith by up to ~0.3 degree across the track.

**A band's grid** combines its detectors as SNAP does: detectors are taken in file order and each finite
value overwrites the node, so a node in the overlap of two detectors gets the last one's value (the true
angle there depends on which detector imaged the pixel, which the grid alone cannot tell).
**Mean view angles** (``view_zenith_mean`` / ``view_azimuth_mean``) are, as in SNAP, the per-node mean of
the bands' grids; SNAP averages every band present in the file (B10 too) and gives NaN where one band
lacks a value, here the mean is over the bands that have one. Azimuths are averaged across 0/360 (each
node's values are unwrapped around its first band's value).

**Swath edges.** Nodes outside every detector of a band are NaN, so pixels near the swath edge would
lose their angles (a pixel needs its four surrounding nodes). :func:`fill_edge_nodes` extrapolates the
grid linearly two nodes deep beyond its valid nodes; pixels where the product holds no data are blanked
by the reader anyway. The sun grid has values everywhere.

**Onto a target grid.** Pixel centres are placed among the nodes (projected into the tile's CRS first
when the grid is in another one, e.g. the neighbouring UTM zone) and the four surrounding nodes are
interpolated bilinearly; azimuths continuously across 0/360, so a cell with nodes at 350 and 10 degrees
gives 0 between them, never 180.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from lxml import etree

from senprep_core.bands import TILE_ANGLES, view_angle_band
from senprep_core.errors import MetadataError
from senprep_core.geo.grid import TargetGrid
from senprep_core.geo.projection import transformer
from senprep_core.xmlsafe import parse_xml

#: Canonical band of each ESA ``bandId`` (0..12).
BAND_OF_ID: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: Pixels between the pixel centres projected exactly when the target grid's CRS is not the tile's.
LATTICE_STEP = 32
#: Rows of target pixels interpolated at once (bounds the temporary arrays).
ROW_CHUNK = 512
#: How far (in steps) beyond the outer nodes angles are still given, extrapolated from the edge cell.
SPAN_MARGIN = 0.1
#: Rings of NaN nodes filled by extrapolation beyond a band's valid nodes (two reach every cell with a value).
EDGE_RINGS = 2


@dataclass(frozen=True)
class TileAngles:
    """The angle grids of one tile (degrees, float64, NaN where the metadata has no value).

    Node (i, j) lies at ``(ulx + j * col_step, uly - i * row_step)`` in EPSG ``epsg``. ``view_zenith`` and
    ``view_azimuth`` map canonical bands (``B01``...) to their detectors combined; ``detectors`` lists the
    detector ids of each band in file order.
    """

    epsg: int
    ulx: float
    uly: float
    col_step: float
    row_step: float
    sun_zenith: np.ndarray
    sun_azimuth: np.ndarray
    view_zenith: Mapping[str, np.ndarray] = field(default_factory=dict)
    view_azimuth: Mapping[str, np.ndarray] = field(default_factory=dict)
    detectors: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)  # band -> why its viewing grids were left out

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of nodes."""
        return (int(self.sun_zenith.shape[0]), int(self.sun_zenith.shape[1]))

    def has(self, name: str) -> bool:
        """True when the grid of canonical angle band ``name`` can be made from this metadata."""
        if name in ("sun_zenith", "sun_azimuth"):
            return True
        if name in ("view_zenith_mean", "view_azimuth_mean"):
            return bool(self.view_zenith)
        return name.rsplit("_", 1)[-1] in self.view_zenith

    def nodes(self, name: str) -> np.ndarray:
        """The node values of canonical angle band ``name`` (``sun_zenith``, ``view_azimuth_B8A``...), edges
        filled (:func:`fill_edge_nodes`). Raises :class:`KeyError` when :meth:`has` is False."""
        azimuth = "azimuth" in name
        if name in ("sun_zenith", "sun_azimuth"):
            return self.sun_azimuth if azimuth else self.sun_zenith
        grids = self.view_azimuth if azimuth else self.view_zenith
        if name in ("view_zenith_mean", "view_azimuth_mean"):
            if not grids:
                raise KeyError(name)
            return mean_grid([fill_edge_nodes(g, azimuth) for g in grids.values()], azimuth)
        return fill_edge_nodes(grids[name.rsplit("_", 1)[-1]], azimuth)


# ---------------------------------------------------------------- node arithmetic


def wrap180(delta: np.ndarray) -> np.ndarray:
    """Angle differences folded into [-180, 180)."""
    return (np.asarray(delta, dtype=np.float64) + 180.0) % 360.0 - 180.0


def combine_detectors(grids: list[np.ndarray]) -> np.ndarray:
    """One band's grid from its detectors' grids (file order): each finite value overwrites the node."""
    out = np.full(grids[0].shape, np.nan)
    for grid in grids:
        ok = np.isfinite(grid)
        out[ok] = grid[ok]
    return out


def mean_grid(grids: list[np.ndarray], azimuth: bool = False) -> np.ndarray:
    """Per-node mean of several grids over those with a value (NaN where none has one).

    Azimuths are unwrapped around the first finite value of the node before averaging and the mean is
    returned in [0, 360), so 359 and 1 average to 0, not 180.
    """
    stack = np.stack([np.asarray(g, dtype=np.float64) for g in grids])
    count = np.isfinite(stack).sum(axis=0)
    if azimuth:
        first = np.argmax(np.isfinite(stack), axis=0)
        reference = np.take_along_axis(stack, first[None], axis=0)[0]
        stack = reference + wrap180(stack - reference)
    total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.mod(mean, 360.0) if azimuth else mean


_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def _shifted(values: np.ndarray, di: int, dj: int) -> np.ndarray:
    """``out[i, j] = values[i + di, j + dj]`` (NaN beyond the array)."""
    rows, cols = values.shape
    out = np.full(values.shape, np.nan)
    src_i = slice(max(di, 0), rows + min(di, 0))
    src_j = slice(max(dj, 0), cols + min(dj, 0))
    dst_i = slice(max(-di, 0), rows + min(-di, 0))
    dst_j = slice(max(-dj, 0), cols + min(-dj, 0))
    out[dst_i, dst_j] = values[src_i, src_j]
    return out


def fill_edge_nodes(values: np.ndarray, azimuth: bool = False, rings: int = EDGE_RINGS) -> np.ndarray:
    """The grid with its NaN nodes next to valid ones extrapolated, ``rings`` nodes deep.

    Each NaN node with a valid neighbour n1 in a row or column direction takes ``2 * n1 - n2`` (n2 the next
    node on, when valid: linear extrapolation) or ``n1``; the candidates of the four directions are averaged
    (azimuths unwrapped around the first). A grid without NaN comes back unchanged (the same array).
    """
    out = np.asarray(values, dtype=np.float64)
    if np.isfinite(out).all() or not np.isfinite(out).any():
        return out
    for _ in range(rings):
        missing = ~np.isfinite(out)
        candidates = []
        for di, dj in _DIRECTIONS:
            n1, n2 = _shifted(out, di, dj), _shifted(out, 2 * di, 2 * dj)
            step = wrap180(n1 - n2) if azimuth else n1 - n2
            candidates.append(np.where(np.isfinite(n2), n1 + step, n1))
        filled = mean_grid(candidates, azimuth)
        take = missing & np.isfinite(filled)
        if not take.any():
            break
        out = np.where(take, filled, out)
    return out


# ---------------------------------------------------------------- parsing


def _children(parent: etree._Element, tag: str) -> list[etree._Element]:
    return [el for el in parent if isinstance(el.tag, str) and etree.QName(el).localname == tag]


def _descendants(root: etree._Element, tag: str) -> list[etree._Element]:
    return [el for el in root.iter(etree.Element) if etree.QName(el).localname == tag]


def _number(el: etree._Element | None, label: str) -> float:
    text = (el.text or "").strip() if el is not None else ""
    try:
        return float(text)
    except ValueError as exc:
        raise MetadataError(f"{label} is {text!r}, not a number") from exc


def parse_values(holder: etree._Element, label: str) -> tuple[np.ndarray, float, float]:
    """(values, column step, row step) of a ``Zenith`` / ``Azimuth`` element (``NaN`` text is NaN)."""
    steps = [_number(next(iter(_children(holder, t)), None), f"{label} {t}") for t in ("COL_STEP", "ROW_STEP")]
    lists = _children(holder, "Values_List")
    rows = [el.text or "" for el in _children(lists[0], "VALUES")] if lists else []
    try:
        values = [[float(v) for v in row.split()] for row in rows]
    except ValueError as exc:
        raise MetadataError(f"{label}: a VALUES row holds a value that is not a number ({exc})") from exc
    if len(values) < 2 or len({len(r) for r in values}) != 1 or len(values[0]) < 2:
        raise MetadataError(f"{label}: Values_List is not a table of at least 2 x 2 values of equal-length rows")
    if min(steps) <= 0:
        raise MetadataError(f"{label}: COL_STEP / ROW_STEP must be positive, got {steps}")
    return np.array(values, dtype=np.float64), steps[0], steps[1]


def _pair(grid_el: etree._Element, label: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    parts = {}
    for name in ("Zenith", "Azimuth"):
        found = _children(grid_el, name)
        if not found:
            raise MetadataError(f"{label} has no <{name}> grid")
        parts[name] = parse_values(found[0], f"{label} {name}")
    (zen, c1, r1), (az, c2, r2) = parts["Zenith"], parts["Azimuth"]
    if zen.shape != az.shape or (c1, r1) != (c2, r2):
        raise MetadataError(f"{label}: its Zenith and Azimuth grids differ in size or step")
    return zen, az, (c1, r1)


def _corner(root: etree._Element, label: str) -> tuple[float, float]:
    """ULX / ULY of the tile (the 10 m Geoposition, else the first one)."""
    positions = _descendants(root, "Geoposition")
    if not positions:
        raise MetadataError(f"{label} has no Tile_Geocoding/Geoposition (ULX, ULY) to place its angle grids")
    pos = next((p for p in positions if p.get("resolution") == "10"), positions[0])
    ulx = _number(next(iter(_children(pos, "ULX")), None), f"{label} ULX")
    uly = _number(next(iter(_children(pos, "ULY")), None), f"{label} ULY")
    return ulx, uly


@dataclass
class _ViewGrids:
    zeniths: dict[str, list[np.ndarray]] = field(default_factory=dict)
    azimuths: dict[str, list[np.ndarray]] = field(default_factory=dict)
    detectors: dict[str, list[int]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _view_grids(root: etree._Element, shape: tuple[int, ...], step: tuple[float, float], label: str) -> _ViewGrids:
    """Every band's detector grids; a band with a malformed grid is left out, its problem recorded."""
    found = _ViewGrids()
    for el in _descendants(root, "Viewing_Incidence_Angles_Grids"):
        band_id, detector = el.get("bandId", ""), el.get("detectorId", "")
        if not band_id.isdigit() or int(band_id) >= len(BAND_OF_ID) or not detector.isdigit():
            raise MetadataError(f"{label}: Viewing_Incidence_Angles_Grids with bandId={band_id!r} detectorId="
                                f"{detector!r}; expected bandId 0..12 and a detector number")  # fmt: skip
        band = BAND_OF_ID[int(band_id)]
        try:
            zen, az, grid_step = _pair(el, f"{label} viewing angles of {band} detector {detector}")
            if zen.shape != shape or grid_step != step:
                raise MetadataError(f"{label}: the viewing angle grid of {band} detector {detector} is {zen.shape} "
                                    f"with steps {grid_step}, the sun grid {shape} with steps {step}")  # fmt: skip
        except MetadataError as exc:
            found.problems.setdefault(band, str(exc))
            continue
        found.zeniths.setdefault(band, []).append(zen)
        found.azimuths.setdefault(band, []).append(az)
        found.detectors.setdefault(band, []).append(int(detector))
    for band in found.problems:
        for table in (found.zeniths, found.azimuths, found.detectors):
            table.pop(band, None)
    return found


def parse_tile_angles(data: bytes | etree._Element, epsg: int, label: str = "tile metadata") -> TileAngles:
    """The angle grids of a tile metadata file (``MTD_TL.xml`` bytes, or its parsed root).

    ``epsg`` is the tile's CRS (the grids' node coordinates are in it). Raises :class:`MetadataError` when
    the file has no ``Sun_Angles_Grid`` or a grid is malformed; a file without viewing grids gives empty
    ``view_zenith`` / ``view_azimuth``.
    """
    root = parse_xml(data, label) if isinstance(data, bytes) else data
    suns = _descendants(root, "Sun_Angles_Grid")
    if not suns:
        raise MetadataError(f"{label} holds no Sun_Angles_Grid (Geometric_Info/Tile_Angles); it has no angle grids")
    sun_zenith, sun_azimuth, step = _pair(suns[0], f"{label} Sun_Angles_Grid")
    ulx, uly = _corner(root, label)
    views = _view_grids(root, sun_zenith.shape, step, label)
    order = [b for b in BAND_OF_ID if b in views.zeniths]
    return TileAngles(
        epsg, ulx, uly, step[0], step[1], sun_zenith, sun_azimuth,
        view_zenith={b: combine_detectors(views.zeniths[b]) for b in order},
        view_azimuth={b: combine_detectors(views.azimuths[b]) for b in order},
        detectors={b: tuple(views.detectors[b]) for b in order},
        problems=dict(views.problems),
    )  # fmt: skip


def angle_band_names() -> tuple[str, ...]:
    """Every canonical angle band: the tile angles, then zenith and azimuth of each band (SNAP's order)."""
    per_band = [view_angle_band(a, b) for b in BAND_OF_ID for a in ("zenith", "azimuth")]
    return (*TILE_ANGLES, *per_band)


# ---------------------------------------------------------------- interpolation onto a grid


@dataclass(frozen=True)
class NodePositions:
    """Where a target grid's pixel centres fall among the nodes: fractional column ``fx`` and row ``fy``.

    Both (h, w), or (1, w) and (h, 1) when the grid shares the tile's CRS (then they are separable).
    """

    fx: np.ndarray
    fy: np.ndarray


def _lattice(n: int, step: int) -> np.ndarray:
    """Every ``step``-th index of ``range(n)`` and the last one."""
    return np.unique(np.append(np.arange(0, n, step), n - 1))


def _axis_weights(targets: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the knot at or before each target, weight of the next knot) for linear interpolation."""
    if knots.size == 1:
        return np.zeros(targets.size, dtype=np.intp), np.zeros(targets.size)
    i0 = np.clip(np.searchsorted(knots, targets, side="right") - 1, 0, knots.size - 2)
    return i0, (targets - knots[i0]) / (knots[i0 + 1] - knots[i0])


def _densify(
    coarse: np.ndarray, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Bilinear interpolation of values on a lattice of pixels to every pixel."""
    (r0, wr), (c0, wc) = rows, cols
    c1 = np.minimum(c0 + 1, coarse.shape[1] - 1)
    along = coarse[:, c0] * (1 - wc) + coarse[:, c1] * wc
    r1 = np.minimum(r0 + 1, coarse.shape[0] - 1)
    return np.asarray(along[r0] * (1 - wr)[:, None] + along[r1] * wr[:, None])


def node_positions(angles: TileAngles, grid: TargetGrid, lattice_step: int = LATTICE_STEP) -> NodePositions:
    """The node coordinates of ``grid``'s pixel centres.

    In another CRS than the tile's, the centres of a lattice of pixels (every ``lattice_step``-th, and the
    last row and column) are projected into the tile's CRS and the rest interpolated between them: the
    error is far below a millimetre, for a fraction of the cost of projecting every pixel.
    """
    xs, ys = grid.pixel_centres()
    if grid.epsg == angles.epsg:
        fx = (xs - angles.ulx) / angles.col_step
        fy = (angles.uly - ys) / angles.row_step
        return NodePositions(fx[None, :], fy[:, None])
    rows, cols = _lattice(grid.height, lattice_step), _lattice(grid.width, lattice_step)
    gx, gy = np.meshgrid(xs[cols], ys[rows])
    tx, ty = transformer(grid.epsg, angles.epsg).transform(gx, gy)
    row_w = _axis_weights(np.arange(grid.height, dtype=np.float64), rows.astype(np.float64))
    col_w = _axis_weights(np.arange(grid.width, dtype=np.float64), cols.astype(np.float64))
    fx = (_densify(np.asarray(tx), row_w, col_w) - angles.ulx) / angles.col_step
    fy = (angles.uly - _densify(np.asarray(ty), row_w, col_w)) / angles.row_step
    return NodePositions(fx, fy)


def _cell(f: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first node, weight of the next node, inside the nodes' span) of fractional node coordinates.

    Up to :data:`SPAN_MARGIN` of a step beyond the outer nodes the edge cell is extrapolated linearly (the
    grid starts exactly at the tile's upper-left corner, where pixels may still hold data).
    """
    inside = (f >= -SPAN_MARGIN) & (f <= n - 1 + SPAN_MARGIN)
    i0 = np.clip(np.floor(f), 0, n - 2).astype(np.intp)
    return i0, f - i0, inside


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray, azimuth: bool) -> np.ndarray:
    """``a + w * (b - a)``, a node of zero weight never counting (even when NaN); azimuths unwrapped."""
    delta = b - a
    if azimuth:
        delta = wrap180(delta).astype(delta.dtype, copy=False)
    out = a + w * delta
    if np.any(w == 0.0):
        out = np.where(w == 0.0, a, out)
    if np.any(w == 1.0):
        out = np.where(w == 1.0, b, out)
    return out


def _finish(out: np.ndarray, azimuth: bool) -> np.ndarray:
    """Azimuths (within one turn of [0, 360) once interpolated) folded into [0, 360) in place."""
    if azimuth:
        np.add(out, 360.0, out=out, where=out < 0.0)
        np.subtract(out, 360.0, out=out, where=out >= 360.0)
    return out


def interpolate_nodes(
    values: np.ndarray, positions: NodePositions, azimuth: bool = False, row_chunk: int = ROW_CHUNK
) -> np.ndarray:
    """Bilinear interpolation of node values at ``positions``: float32 (h, w), NaN beyond the nodes' span
    (give or take :data:`SPAN_MARGIN`) and where a node of non-zero weight is NaN.

    Azimuths are interpolated continuously across 0/360 (each neighbour unwrapped around the other) and
    returned in [0, 360): nodes of 350 and 10 give 0 half-way, not 180.
    """
    rows, cols = values.shape
    fx, fy = positions.fx, positions.fy
    if fx.shape[0] == 1 and fy.shape[1] == 1:  # separable: along the columns at the node rows, then the rows
        j0, wx, in_x = _cell(fx[0], cols)
        i0, wy, in_y = _cell(fy[:, 0], rows)
        along = _lerp(values[:, j0], values[:, j0 + 1], wx, azimuth)
        below = along[1:] if not azimuth else along[:-1] + wrap180(along[1:] - along[:-1])  # next row, unwrapped
        top, bottom = along[:-1].astype(np.float32), below.astype(np.float32)
        out = _lerp(top[i0], bottom[i0], wy[:, None].astype(np.float32), azimuth=False)
        out[~in_y, :] = np.nan
        out[:, ~in_x] = np.nan
        return _finish(out, azimuth)
    height, width = np.broadcast_shapes(fx.shape, fy.shape)
    out = np.empty((height, width), dtype=np.float32)
    for start in range(0, height, row_chunk):
        cx, cy = fx[start : start + row_chunk], fy[start : start + row_chunk]
        j0, wx, in_x = _cell(cx, cols)
        i0, wy, in_y = _cell(cy, rows)
        top = _lerp(values[i0, j0], values[i0, j0 + 1], wx, azimuth)
        bottom = _lerp(values[i0 + 1, j0], values[i0 + 1, j0 + 1], wx, azimuth)
        out[start : start + row_chunk] = np.where(in_x & in_y, _lerp(top, bottom, wy, azimuth), np.nan)
    return _finish(out, azimuth)


def angles_on_grid(angles: TileAngles, grid: TargetGrid, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Canonical angle bands ``names`` on ``grid`` (float32, degrees, NaN beyond the angle grids).

    Raises :class:`KeyError` naming the first band the metadata cannot give (see :meth:`TileAngles.has`).
    """
    missing = [n for n in names if not angles.has(n)]
    if missing:
        raise KeyError(missing[0])
    positions = node_positions(angles, grid)
    return {n: interpolate_nodes(angles.nodes(n), positions, "azimuth" in n) for n in names}
