"""The plan: everything decided before any pixel is read.

``config -> target grid, ROI mask and patches (once) -> search the sources -> select -> pair``: one
:class:`~senprep_core.unit.model.WorkUnit` per product or pair, all sharing the run's
:class:`~senprep_core.unit.model.UnitSpec`. The CLI's ``plan`` and ``search``, the app's search
preview and :func:`senprep_core.pipeline.run` all plan through :func:`make_plan`, so what a preview
shows is what a run does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from senprep_core.bands import parse_s1_bands
from senprep_core.catalog import Provider, SearchQuery, open_provider, serves
from senprep_core.catalog.records import ProductProblem, ProductRecord
from senprep_core.catalog.selection import DroppedProduct, deduplicate, minimum_cover
from senprep_core.config import Config, Mode, unused_settings
from senprep_core.errors import ConfigError, SourceError
from senprep_core.fetch.credentials import CredentialFiles
from senprep_core.geo.tiling import tile_grid
from senprep_core.outputs.cube_layout import CubeLayout, SlotClaim, make_layout
from senprep_core.outputs.legacy_layout import UnitRank, plan_folders
from senprep_core.outputs.records import time_axis_group
from senprep_core.pairing import plan_units, search_padding
from senprep_core.sizing import check_size, run_size, size_warnings
from senprep_core.timeutil import DateWindow
from senprep_core.unit.model import PatchRules, RoiMask, S1Settings, S2Settings, UnitSpec, WorkUnit


@dataclass(frozen=True)
class Plan:
    """The units of a run (all sharing one spec), the products found, and every product left out with why."""

    config: Config
    spec: UnitSpec
    units: tuple[WorkUnit, ...]
    problems: tuple[ProductProblem, ...]
    sources: tuple[str, ...]
    found: tuple[ProductRecord, ...] = ()
    not_selected: tuple[DroppedProduct, ...] = ()
    warnings: tuple[str, ...] = ()
    cube: CubeLayout | None = None  # the Zarr cube's layout, when the run writes one

    @property
    def grid(self) -> Any:
        return self.spec.grid

    @property
    def n_patches(self) -> int:
        """Patches per unit (the ROI's patch layout)."""
        return len(self.spec.patches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "mode": self.config.mode.value,
            "grid": self.spec.grid.to_dict(),
            "patches_per_unit": self.n_patches,
            "sources": list(self.sources),
            "units": [u.to_dict() for u in self.units],
            "unreadable_products": [p.__dict__ for p in self.problems],
            "not_selected": [{"product_id": d.product_id, "reason": d.reason} for d in self.not_selected],
            "warnings": list(self.warnings),
            "empty": self.empty_reason(),
        }

    def empty_reason(self) -> str | None:
        """Why the plan has no unit, in words (ROI, dates, sources, what was found and why it was left out);
        None when it has units."""
        if self.units:
            return None
        config = self.config
        left, bottom, right, top = config.roi.geometry.bounds
        dates = ", ".join(f"{w.start} to {w.end}" for w in config.date_windows)
        where = (f"ROI lon {left:.4f} to {right:.4f}, lat {bottom:.4f} to {top:.4f}; dates {dates}; "
                 f"sources {', '.join(self.sources) or '(given as objects)'}")  # fmt: skip
        if not self.found:
            text = f"no product matched ({where})"
            if min(w.start for w in config.date_windows) > datetime.now(timezone.utc).date():
                text += "; the dates lie in the future"
            return text + ". Check the ROI is longitude, latitude (x first), the dates and the sources"
        reasons = Counter(d.reason for d in self.not_selected)
        why = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5))
        return f"{len(self.found)} products matched but none makes a unit ({where}): {why or 'no reason given'}"


def unit_spec(config: Config) -> UnitSpec:
    """What every unit of ``config`` shares: grid, ROI mask and patches computed once, and the settings."""
    grid = config.grid()
    mask = config.roi_mask()
    return UnitSpec(
        run_name=config.name,
        fingerprint=config.fingerprint(),
        grid=grid,
        roi_mask=RoiMask.from_array(mask),
        roi_lonlat=config.roi.geometry,
        patches=tuple(tile_grid(grid, config.patch, mask)),
        rules=PatchRules(config.output.min_valid_fraction, config.output.max_patch_cloud, config.output.compress),
        s2=s2_settings(config),
        s1=S1Settings(
            config.bands_s1,
            config.s1,
            config.multitemporal.stack_filter if config.mode is Mode.S1_MULTITEMPORAL else None,
        ),
        stac=config.output.stac,
    )


def s2_settings(config: Config) -> S2Settings:
    """What the Sentinel-2 chain of ``config`` reads, and how."""
    return S2Settings(config.bands_s2, config.s2_level, config.reflectance_resampling, config.roi_cloud_threshold)


def resolve_sources(config: Config, sources: Sequence[str] | None) -> tuple[str, ...]:
    """The sources to search: the explicit ones, else the config's, else an error."""
    chosen = tuple(sources or ()) or tuple(config.sources)
    if not chosen:
        raise ConfigError("sources", [], "give --source local:DIR (a folder of .SAFE/.zip products) or --source demo")
    return chosen


def search_queries(config: Config) -> list[SearchQuery]:
    """One query per mission the mode reads. In a pairing mode the secondary mission's windows are
    widened by the pairing tolerance, so a partner just outside a window is still found."""
    before, after = search_padding(config)
    queries = []
    if config.reads_s2:
        windows = config.date_windows
        if config.mode is Mode.S1_WITH_CLOSEST_S2:
            windows = tuple(DateWindow(w.start - before, w.end + after) for w in windows)
        s2_type = "S2MSI2A" if config.s2_level == "L2A" else "S2MSI1C"
        queries.append(SearchQuery(config.roi.geometry, windows, (s2_type,), config.cloud_cover))
    if config.reads_s1:
        windows = config.date_windows
        s2_primary = config.mode in (Mode.S2_WITH_CLOSEST_S1, Mode.S2_WITH_TWO_S1) or config.pairs_sensors
        if s2_primary or config.mode is Mode.S1_MULTITEMPORAL:
            windows = tuple(DateWindow(w.start - before, w.end + after) for w in windows)
        queries.append(SearchQuery(config.roi.geometry, windows, (config.s1_product_type,)))
    return queries


def _searched(provider: Provider, query: SearchQuery, problems: list[ProductProblem]) -> list[ProductRecord]:
    """``provider``'s products for ``query``, named by the ``--source`` value that reopens them; its problems
    are added to ``problems``."""
    result = provider.search(query)
    problems.extend(p for p in result.problems if p not in problems)
    source = getattr(provider, "source", None)  # remote: the --source value that reopens it
    return [replace(r, provider=source) if source else r for r in result.products]


def _online_elsewhere(
    records: list[ProductRecord], query: SearchQuery, later: Sequence[Provider], problems: list[ProductProblem]
) -> list[ProductRecord]:
    """``records`` with each offline one (e.g. in CDSE's long-term archive) replaced by the same product online
    in the first of the ``later`` providers that has it (e.g. ASF); the others stay to be ordered."""
    for provider in later:
        offline = {r.product_id for r in records if not r.online}
        if not offline:
            break
        online = {r.product_id: r for r in _searched(provider, query, problems) if r.online and r.product_id in offline}
        records = [online.get(r.product_id, r) if not r.online else r for r in records]
    return records


def search(config: Config, providers: Sequence[Provider]) -> tuple[list[ProductRecord], list[ProductProblem]]:
    """Products matching the config: for each mission the mode reads, those of the first provider that
    has any (ordered fallback; providers that do not serve the mission's product type are skipped), an
    offline product taken from a later provider that has it online; sorted by time then id. SourceError
    when no provider serves a product type the mode reads."""
    problems: list[ProductProblem] = []
    found: list[ProductRecord] = []
    for query in search_queries(config):
        able = [p for p in providers if serves(p, query.product_types)]
        if not able:
            names = ", ".join(str(getattr(p, "source", None) or p.name) for p in providers)
            raise SourceError(
                f"none of the sources ({names}) serves {'/'.join(query.product_types)} products, which mode "
                f"{config.mode.value} reads; add a --source that does (e.g. cdse)"
            )
        for i, provider in enumerate(able):
            records = _searched(provider, query, problems)
            if records:
                found.extend(_online_elsewhere(records, query, able[i + 1 :], problems))
                break
    found.sort(key=lambda r: (r.sensing_time, r.product_id))
    return found, problems


def select_products(
    config: Config, products: Sequence[ProductRecord]
) -> tuple[list[ProductRecord], list[DroppedProduct]]:
    """Reprocessed duplicates out (newest baseline wins), then per acquisition the fewest tiles / slices
    that cover the ROI; every product left out comes back with its reason."""
    unique = deduplicate(products)
    cover = minimum_cover(unique.kept, config.roi)
    return list(cover.kept), [*unique.dropped, *cover.dropped]


def plan_products(
    config: Config,
    found: Sequence[ProductRecord],
    problems: Sequence[ProductProblem] = (),
    sources: Sequence[str] = (),
) -> Plan:
    """The plan of products already found (select, then pair per the mode)."""
    spec = unit_spec(config)
    selected, dropped = select_products(config, found)
    units, left_out = plan_units(config, selected, spec)
    cube = plan_cube(spec, units) if config.output.zarr else None
    if cube is not None:
        targets = cube.targets()
        units = [replace(u, cube=targets.get(u.unit_id)) for u in units]
    if config.output.layout == "legacy":
        folders = plan_folders([UnitRank(u.unit_id, u.products[0].sensing_time, roi_share(u.products[0], config))
                                for u in units], config.name)  # fmt: skip
        units = [replace(u, legacy_dir=folders[u.unit_id]) for u in units]
    warnings = (*unused_settings(config), *size_warnings(run_size(config)))
    return Plan(config, spec, tuple(units), tuple(problems), tuple(sources), tuple(found),
                tuple(dropped + left_out), warnings, cube)  # fmt: skip


def roi_share(record: ProductRecord, config: Config) -> float:
    """The share of the ROI a product's footprint covers (1 when its footprint is unknown)."""
    roi = config.roi.geometry
    if record.footprint_unwrapped is None or roi.area <= 0:
        return 1.0
    return round(float(record.footprint_unwrapped.intersection(roi).area / roi.area), 6)


def plan_cube(spec: UnitSpec, units: Sequence[WorkUnit]) -> CubeLayout | None:
    """The Zarr cube of a run: the spec's patches and a time slot per product and role (None: no unit)."""
    if not units or not spec.patches:
        return None
    bands = {"S2": tuple(spec.s2.bands)}
    if any(p.family == "S1" for u in units for p in u.products):
        bands["S1"] = tuple(b.name for b in parse_s1_bands(spec.s1.bands))
    claims = [SlotClaim(u.unit_id, time_axis_group(role), p.sensing_time, (p.product_id,), bands[p.family])
              for u in units for p, role in zip(u.products, u.roles, strict=True)]  # fmt: skip
    return make_layout([(p.patch_id, p.grid) for p in spec.patches], claims)


def make_plan(
    config: Config,
    sources: Sequence[str] | None = None,
    providers: Sequence[Provider] | None = None,
    credentials: CredentialFiles | str | None = None,
    force: bool = False,
) -> Plan:
    """Search the sources (or ``providers``) and plan the units.

    ``credentials``: the credentials files for the sources that need one (see :func:`open_provider`). A run
    too large for this machine to plan is refused first (:func:`~senprep_core.sizing.check_size`; ``force``
    tries anyway)."""
    check_size(run_size(config), force)
    chosen = resolve_sources(config, sources) if providers is None else tuple(p.name for p in providers)
    if providers is None:
        providers = [open_provider(s, credentials=credentials) for s in chosen]
    found, problems = search(config, providers)
    return plan_products(config, found, problems, chosen)
