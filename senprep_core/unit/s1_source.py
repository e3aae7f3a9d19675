"""The native Sentinel-1 chain as a unit source: GRD -> noise removal, calibration, speckle filter, terrain
correction, straight onto blocks of the target grid."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from senprep_core.bands import S1Band, parse_s1_bands
from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import CorruptProductError, MetadataError, OutsideSceneError
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.s1.dem import DemOnGrid, load_dem, parse_dem_source
from senprep_core.s1.flattening import (
    FacetModel,
    beta_area,
    build_facets,
    flat_gamma_area,
    flatten_gamma0,
    splat_areas,
)
from senprep_core.s1.geometry import RadarGeometry, geodetic_to_ecef
from senprep_core.s1.measurement import read_dn
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.model import S1Image, S1Metadata
from senprep_core.s1.orbit import Orbit
from senprep_core.s1.orbit_files import select_orbit
from senprep_core.s1.positions import RadarPositions, lattice_indices, lonlat_of, radar_positions, upsample_lattice
from senprep_core.s1.radiometry import (
    calibrate,
    needs_border_noise_removal,
    remove_border_noise,
    remove_thermal_noise,
    to_db,
)
from senprep_core.s1.speckle import SpeckleFilter, apply_speckle_filter
from senprep_core.s1.terrain import block_window, local_incidence, sample, to_enu
from senprep_core.threads import run_in_strips
from senprep_core.unit.fetching import fetched_dem, fetched_orbit_folder, is_fetched_dem, is_fetched_orbit
from senprep_core.unit.model import UnitSpec
from senprep_core.unit.source import BlockData, RoiStats, no_valid_pixel

log = logging.getLogger(__name__)
MODALITY = "S1"
GEOMETRY_LAYERS = ("local_incidence_angle", "layover_shadow", "local_contributing_area")  # from DEM and geometry
FACET_LAYERS = ("layover_shadow", "local_contributing_area")  # these need the DEM facets, like gamma0T
FACET_BUFFER = 12  # grid pixels of DEM facets around a block whose areas reach its radar window, at least
MAX_FACET_BUFFER = 96  # ... and at most (relief adds ~3 pixels per pixel-size of height: layover and shadow reach)
DEM_MARGIN = 14  # grid pixels of DEM kept around the ROI grid
FACET_DEM_MARGIN = MAX_FACET_BUFFER + 2  # the same when facets are needed
STRIP_LINES = 512  # GRD lines per strip of reading, noise removal and calibration
WHOLE_DEM_PIXELS = 36_000_000  # larger grids (e.g. a whole scene) load the DEM block by block


@dataclass(frozen=True)
class LocatedBlock:
    """A block of the grid located in the image: DEM heights (one pixel of margin), radar positions of the
    pixel centres and the radar window read for it (with the filter margin; None: the block misses it)."""

    grid: TargetGrid
    heights: np.ndarray
    positions: RadarPositions
    window: PixelWindow | None
    facets: FacetModel | None = None  # the DEM facets around the block (gamma0T and the facet layers)
    a_gamma: np.ndarray | None = None  # their gamma0 reference area per radar pixel of the window


class S1Source:
    """Terrain-corrects an S1 GRD's configured bands onto blocks of the target grid."""

    def __init__(
        self, record: ProductRecord, unit_id: str, spec: UnitSpec, cache_dir: Path, modality: str = MODALITY
    ) -> None:
        self.modality = modality
        self.spec = spec
        self.options = spec.s1.options
        self.meta: S1Metadata = read_s1_metadata(record.href)
        self.requests: list[S1Band] = parse_s1_bands(spec.s1.bands)
        self.bands = [r.name for r in self.requests]
        pols = [r.polarisation for r in self.requests if r.polarisation is not None]
        self.polarisations = list(dict.fromkeys(pols)) or [self.meta.polarisations[0]]
        for pol in self.polarisations:
            if pol not in self.meta.images:
                raise CorruptProductError(
                    f"{self.meta.product_id} has no {pol} image (it holds {', '.join(self.meta.polarisations)}); "
                    f"drop the {pol} bands from sentinel1.bands or choose products with {pol}"
                )
            if self.meta.images[pol].calibration is None:
                raise MetadataError(
                    f"{self.meta.product_id} lacks annotation/calibration/calibration-*-{pol.lower()}-*.xml; "
                    "re-download the complete product"
                )
        self.reference = self.meta.image(self.polarisations[0])
        orbit_folder = Path(self.options.orbit_folder) if self.options.orbit_folder else None
        if is_fetched_orbit(self.options.orbit_folder):
            orbit_folder = fetched_orbit_folder(str(self.options.orbit_folder), self.meta, cache_dir)
        self.orbit = select_orbit(self.meta, self.reference, orbit_folder)
        self.geometry = RadarGeometry(self.reference, Orbit(self.orbit))
        self.speckle = SpeckleFilter(**self.options.speckle_params())
        self.stack_filter = spec.s1.stack_filter  # a multi-temporal filter replaces the single-date one
        if self.stack_filter is not None:
            self.speckle = SpeckleFilter("none")
        self.margin = self.stack_filter.margin if self.stack_filter is not None else self.speckle.margin
        self.grid = spec.grid
        if is_fetched_dem(self.options.dem):
            self.dem_source = fetched_dem(str(self.options.dem), spec.roi_lonlat, cache_dir)
        else:
            self.dem_source = parse_dem_source(self.options.dem)
        # small grids: the DEM once for the whole grid; large ones (up to a whole scene): per block
        whole = self.grid.width * self.grid.height <= WHOLE_DEM_PIXELS
        self.needs_facets = any(r.calibration == "gamma0T" or r.name in FACET_LAYERS for r in self.requests)
        self.dem_margin = FACET_DEM_MARGIN if self.needs_facets else DEM_MARGIN
        self.dem: DemOnGrid = load_dem(
            self.dem_source, self.grid if whole else self.grid.subgrid(PixelWindow(0, 0, 64, 64)),
            margin_px=self.dem_margin, geoid=self.options.geoid,
        )  # fmt: skip
        self._whole_dem = whole
        self._check_overlap()
        self.extra = self._sidecar_extra(record, unit_id)

    # ----- UnitSource ---------------------------------------------------------------------

    def roi_stats(self) -> RoiStats | None:
        return None  # taken from the blocks as they are processed

    def rejection(self, stats: RoiStats) -> str | None:
        return no_valid_pixel(stats)

    def close(self) -> None:
        return None

    def read_block(self, grid: TargetGrid) -> BlockData:
        located = self.locate(grid)
        linear: dict[str, np.ndarray] = {}
        if located.window is not None:
            for req, intensity in self.intensities(located):
                if self.speckle.name != "none":
                    intensity = apply_speckle_filter(intensity, self.speckle)
                linear[req.name] = self.sample_radar(intensity, located)
        return self.assemble(grid, located, linear)

    # ----- a block in steps (a stack filter works between them) ---------------------------

    def locate(self, grid: TargetGrid) -> LocatedBlock:
        """Heights and radar positions of the block's pixels, the radar window they read (with the filter
        margin; None where the block misses the image) and, when needed, the DEM facets and their areas."""
        heights = self._heights(grid, extra=1)
        positions = self.positions(grid, heights[1:-1, 1:-1])
        window = block_window(positions, self.margin, self.meta, self.polarisations[0])
        facets = self._facets(grid) if self.needs_facets else None
        a_gamma = splat_areas(facets.positions, facets.area, window) if facets is not None and window else None
        return LocatedBlock(grid, heights, positions, window, facets, a_gamma)

    def intensities(self, located: LocatedBlock) -> Iterator[tuple[S1Band, np.ndarray]]:
        """Each backscatter band's calibrated (and flattened) intensity over the block's radar window
        (none when the block misses the image), before any speckle filter."""
        window = located.window
        if window is None:
            return
        for pol in self.polarisations:
            image = self.meta.image(pol)
            power = self._power(image, window)
            for req in self.requests:
                if req.polarisation != pol or req.calibration is None:
                    continue
                target = "beta0" if req.calibration == "gamma0T" else req.calibration
                intensity = self._calibrated(power, image, window, target)
                if located.a_gamma is not None and req.calibration == "gamma0T":
                    intensity = flatten_gamma0(intensity, located.a_gamma, beta_area(image, window))
                yield req, intensity

    def sample_radar(self, radar: np.ndarray, located: LocatedBlock, resampling: str | None = None) -> np.ndarray:
        """A radar-geometry array of ``located.window`` sampled at the block's pixels (NaN without a window)."""
        if located.window is None:
            return np.full(located.positions.line.shape, np.nan, dtype=np.float32)
        return sample(radar, located.positions, located.window, resampling or self.options.resampling)

    def assemble(self, grid: TargetGrid, located: LocatedBlock, linear: dict[str, np.ndarray]) -> BlockData:
        """The block's bands from the sampled linear backscatter (``linear``, by band name): dB where asked,
        the geometry layers, and validity."""
        data = np.full((len(self.requests), grid.height, grid.width), np.nan, dtype=np.float32)
        for i, req in enumerate(self.requests):
            if req.is_backscatter and req.name in linear:
                values = linear[req.name]
                data[i] = to_db(values, self.options.db_floor) if req.db else values
            elif req.name == "local_contributing_area" and located.a_gamma is not None and located.window:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = (located.a_gamma / flat_gamma_area(self.reference, located.window)).astype(np.float32)
                data[i] = self.sample_radar(ratio, located, "bilinear")
        if any(r.name in ("local_incidence_angle", "layover_shadow") for r in self.requests):
            lia, layover, shadow = self._geometry_layers(grid, located.heights, located.facets)
            for i, req in enumerate(self.requests):
                if req.name == "local_incidence_angle":
                    data[i] = lia
                elif req.name == "layover_shadow":
                    data[i] = layover.astype(np.float32) + 2 * shadow.astype(np.float32)
        return BlockData(data, self._validity(data, located), None)

    def _validity(self, data: np.ndarray, located: LocatedBlock) -> np.ndarray:
        """Valid pixels: every backscatter band finite; non-backscatter bands cleared elsewhere, except the
        geometry layers, which stay defined where the backscatter is not (shadow): on the image, with a DEM."""
        positions, window = located.positions, located.window
        backscatter = [i for i, r in enumerate(self.requests) if r.is_backscatter]
        valid = np.asarray(np.isfinite(data[backscatter]).all(axis=0) if backscatter else np.isfinite(positions.line))
        if window is None:
            valid[:] = False
        image = self.reference
        seen = np.isfinite(positions.line) & np.isfinite(positions.pixel) & (window is not None)
        seen &= (positions.line > -0.5) & (positions.line < image.lines - 0.5)
        seen &= (positions.pixel > -0.5) & (positions.pixel < image.samples - 0.5)
        for i, req in enumerate(self.requests):
            if not req.is_backscatter:
                data[i][~(seen if req.name in GEOMETRY_LAYERS else valid)] = np.nan
        return valid

    # ----- steps ----------------------------------------------------------------------------

    def positions(self, grid: TargetGrid, heights: np.ndarray, exact: bool = False) -> RadarPositions:
        """GRD (line, pixel) of the grid's pixel centres at ``heights`` (see :func:`radar_positions`)."""
        g = self.geometry
        return radar_positions(grid, heights, g.range_time, exact=exact, to_image=g.image_coordinates)

    def heights(self, grid: TargetGrid) -> np.ndarray:
        """Heights (as the chain uses them: ellipsoidal) at the pixel centres of ``grid``; NaN where no DEM."""
        return self._heights(grid, extra=0)

    def _heights(self, grid: TargetGrid, extra: int) -> np.ndarray:
        if self.dem_source.kind == "flat" and self.dem.geoid == "none":  # constant: no reprojection, one warning
            return np.full((grid.height + 2 * extra, grid.width + 2 * extra), self.dem_source.height)
        dem = self.dem
        if not self._whole_dem and dem.grid.window_of(grid.buffered(extra)).intersection(
            PixelWindow(0, 0, dem.grid.height, dem.grid.width)
        ) != dem.grid.window_of(grid.buffered(extra)):
            margin = max(extra, self.dem_margin)
            dem = self.dem = load_dem(self.dem_source, grid, margin_px=margin, geoid=self.options.geoid)
        want = dem.grid.window_of(grid.buffered(extra))
        inside = want.intersection(PixelWindow(0, 0, dem.grid.height, dem.grid.width))
        out = np.full((want.height, want.width), np.nan, dtype=np.float64)
        if inside is not None:
            rows, cols = inside.shifted(-want.row_off, -want.col_off).slices()
            out[rows, cols] = dem.heights[inside.slices()]
        return out

    def _power(self, image: S1Image, window: PixelWindow) -> np.ndarray:
        """Noise-removed power of ``window``: read and computed in strips of lines on the thread budget
        (the border noise of old products is found along whole columns: those take the window at once)."""
        if needs_border_noise_removal(self.meta.ipf_version):
            return self._power_of(image, window)
        power = np.empty((window.height, window.width), dtype=np.float32)

        def strip(start: int, stop: int) -> None:
            part = PixelWindow(window.row_off + start, window.col_off, stop - start, window.width)
            power[start:stop] = self._power_of(image, part)

        run_in_strips(strip, window.height, STRIP_LINES)
        return power

    def _calibrated(self, power: np.ndarray, image: S1Image, window: PixelWindow, target: str) -> np.ndarray:
        """``calibrate`` in strips of lines on the thread budget (LUTs are evaluated per pixel)."""
        out = np.empty_like(power)

        def strip(start: int, stop: int) -> None:
            part = PixelWindow(window.row_off + start, window.col_off, stop - start, window.width)
            out[start:stop] = calibrate(power[start:stop], image.calibration, part, target)  # type: ignore[arg-type]

        run_in_strips(strip, window.height, STRIP_LINES)
        return out

    def _power_of(self, image: S1Image, window: PixelWindow) -> np.ndarray:
        dn = read_dn(self.meta, image.polarisation, window)
        nodata = dn <= 0
        if self.options.noise_removal and image.noise is not None:
            power = remove_thermal_noise(dn, image.noise, window, self.options.negative_power)
        else:
            power = dn.astype(np.float32) ** 2
        if needs_border_noise_removal(self.meta.ipf_version):
            power = remove_border_noise(power, window, image.samples, self.meta.ipf_version, image_lines=image.lines)
        power = power.astype(np.float32, copy=False)
        power[nodata] = np.nan
        return power

    def _look_enu(self, grid: TargetGrid, heights: np.ndarray) -> np.ndarray:
        """Unit vectors from each pixel centre towards the satellite, in east/north/up.

        The look direction changes slowly: it is solved on the positions lattice and interpolated.
        """
        rows, cols = lattice_indices(grid.height), lattice_indices(grid.width)
        lon, lat = lonlat_of(grid)
        sub = np.ix_(rows.astype(int), cols.astype(int))
        h = np.nan_to_num(heights[sub])
        xyz = np.stack(geodetic_to_ecef(lat[sub], lon[sub], h), axis=-1)
        look = np.moveaxis(self.geometry.look_vectors(xyz), -1, 0)
        look = np.stack([upsample_lattice(c, rows, cols, grid) for c in look])
        return to_enu(look, lat, lon)

    def _facets(self, grid: TargetGrid) -> FacetModel:
        """The DEM facets around ``grid``, far enough out to reach its radar window over the relief."""
        around = self._heights(grid.buffered(MAX_FACET_BUFFER), extra=0)
        finite = around[np.isfinite(around)]
        relief = float(finite.max() - finite.min()) if finite.size else 0.0
        buffer = min(MAX_FACET_BUFFER, FACET_BUFFER + int(np.ceil(3.0 * relief / grid.resolution)))
        facets = grid.buffered(buffer)
        return build_facets(
            facets, self._heights(facets, extra=1), self.options.facet_oversampling,
            lambda g, h: self.positions(g, h), self._look_enu, self.reference.range_pixel_spacing,
        )  # fmt: skip

    def _geometry_layers(
        self, grid: TargetGrid, heights: np.ndarray, facets: FacetModel | None
    ) -> tuple[np.ndarray, ...]:
        look_enu = self._look_enu(grid, heights[1:-1, 1:-1])
        lia, layover, shadow = local_incidence(grid, heights, look_enu)
        if facets is not None:  # occlusion in radar geometry replaces the slope-only estimate
            layover, shadow = facets.flags_on(grid)
        bad = ~np.isfinite(lia)
        lia[bad] = np.nan
        return lia, layover & ~bad, shadow & ~bad

    def _check_overlap(self) -> None:
        """Fail early, with a clear message, when the ROI grid misses the image (checked on a sparse lattice)."""
        grid = self.grid
        step = max(1, min(grid.width, grid.height) // 32)
        sparse = TargetGrid(grid.epsg, grid.resolution * step, grid.left, grid.top,
                            max(1, grid.width // step), max(1, grid.height // step))  # fmt: skip
        heights = self._sparse_heights(sparse)
        positions = self.positions(sparse, heights, exact=True)
        if positions.radar_bounds(0, self.reference.lines, self.reference.samples) is None:
            raise OutsideSceneError(
                f"the ROI does not overlap the image of {self.meta.product_id} "
                f"(footprint {self.meta.footprint_wkt}); choose products covering the ROI"
            )

    def _sparse_heights(self, sparse: TargetGrid) -> np.ndarray:
        """Heights at the centres of a coarse grid: from the loaded DEM, or its mean when it is not loaded there."""
        if not self._whole_dem:
            finite = self.dem.heights[np.isfinite(self.dem.heights)]
            return np.full(sparse.shape, float(finite.mean()) if finite.size else 0.0)
        xs, ys = sparse.pixel_centres()
        cols = np.clip(((xs - self.dem.grid.left) / self.dem.grid.resolution).astype(int), 0, self.dem.grid.width - 1)
        rows = np.clip(((self.dem.grid.top - ys) / self.dem.grid.resolution).astype(int), 0, self.dem.grid.height - 1)
        return self.dem.heights[np.ix_(rows, cols)].astype(np.float64)

    def _sidecar_extra(self, record: ProductRecord, unit_id: str) -> dict[str, Any]:
        meta = self.meta
        return {
            "unit_id": unit_id,
            "product_ids": [record.product_id],
            "platform": {"S1A": "sentinel-1a", "S1B": "sentinel-1b", "S1C": "sentinel-1c"}.get(
                meta.mission, meta.mission
            ),
            "sensing_time": meta.start_time.isoformat().replace("+00:00", "Z"),
            "sar": {
                "instrument_mode": meta.mode,
                "product_type": meta.product_type,
                "polarizations": list(meta.polarisations),
                "orbit_direction": meta.orbit_direction.lower(),
                "relative_orbit": meta.relative_orbit,
                "ipf_version": meta.ipf_version,
            },
            "processing": {
                "chain": "senprep native: noise removal, calibration, speckle filter, range-Doppler terrain correction",
                "orbit": self.orbit.source,
                "dem": self.dem.source,
                "dem_flat": self.dem.flat,
                "geoid": self.dem.geoid,
                "thermal_noise_removed": bool(self.options.noise_removal),
                "negative_power": self.options.negative_power,
                "border_noise_removed": needs_border_noise_removal(meta.ipf_version),
                "speckle_filter": self.options.speckle_params()
                if self.stack_filter is None
                else {"name": "none", "replaced_by": "multitemporal_filter"},
                **({"multitemporal_filter": self.stack_filter.to_dict()} if self.stack_filter is not None else {}),
                "resampling": self.options.resampling,
                "db_floor": self.options.db_floor,
            },
            "config_fingerprint": self.spec.fingerprint,
            "roi_name": self.spec.run_name,
        }
