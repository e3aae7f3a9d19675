"""Selection helpers the pipeline applies to found products: pure functions on :class:`ProductRecord`.

- :func:`deduplicate`: of the reprocessed versions of one datatake product, keep the newest
  (S2: newer processing baseline, then newer generation time; S1: newer processing information when the
  catalogue gives it).
- :func:`minimum_cover`: per acquisition, the fewest S2 tiles / S1 slices whose footprints cover the ROI
  (greedy set cover on the ROI area gained, areas in the ROI's UTM zone, then a pass removing picks made
  redundant by later ones).
- :func:`cloud_cover_in_range`: the tile-level cloud-cover range check.

Names are read from ``product_id`` or, for catalogues whose item ids are not SAFE names (STAC), from
``extra["safe_name"]`` / ``extra["s2:product_uri"]`` / ``extra["product_uri"]``. Optional ``extra`` keys
used when present: ``processing_baseline`` / ``s2:processing_baseline`` / ``s1:processing_baseline``,
``generation_time`` / ``s2:generation_time`` / ``processing_time`` / ``ingestion_time`` / ``published``
(datetime or ISO text), ``datatake_id`` / ``s1:datatake_id``, ``absolute_orbit`` / ``sat:absolute_orbit``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import shapely
from shapely.geometry.base import BaseGeometry

from senprep_core.catalog.records import ProductRecord
from senprep_core.checks import check_cloud_range
from senprep_core.geo.projection import project_lonlat
from senprep_core.geo.roi import POLAR_DENSIFY_DEGREES, ROI, is_polar_epsg
from senprep_core.product_names import NameInfo, parse_product_name, product_stem
from senprep_core.timeutil import parse_utc

log = logging.getLogger(__name__)

MIN_GAIN_FRACTION = 0.001
"""A product adding less than this fraction of the ROI area (0.1 %) to the cover is dropped."""

_NAME_KEYS = ("safe_name", "s2:product_uri", "product_uri")
_BASELINE_KEYS = ("processing_baseline", "s2:processing_baseline", "s1:processing_baseline")
_GENERATION_KEYS = ("generation_time", "s2:generation_time", "processing_time", "ingestion_time", "published")


@dataclass(frozen=True)
class DroppedProduct:
    """A product a selection step left out, and why (shown in the run report and ``senprep search``)."""

    record: ProductRecord
    reason: str

    @property
    def product_id(self) -> str:
        return self.record.product_id


class Selection(NamedTuple):
    """What a selection step kept (in input order) and what it dropped with reasons."""

    kept: tuple[ProductRecord, ...]
    dropped: tuple[DroppedProduct, ...]


@dataclass(frozen=True)
class CloudCheck:
    """Result of :func:`cloud_cover_in_range`; true when the product passes. ``note`` explains a drop or a
    pass without a cloud value."""

    passed: bool
    note: str | None = None

    def __bool__(self) -> bool:
        return self.passed


# ---------------------------------------------------------------------------------------------------------------
# names and versions


def _full_name(name: str) -> NameInfo | None:
    """The parsed name when it is a complete SAFE name (S1 names in any case), else None."""
    info = parse_product_name(name) or parse_product_name(name.upper())
    return info if info is not None and info.complete else None


def _safe_name(record: ProductRecord) -> str:
    """The SAFE product name of a record (its id, or the name a STAC catalogue keeps in ``extra``)."""
    stem = product_stem(record.product_id)
    if _full_name(stem) is not None:
        return stem
    for key in _NAME_KEYS:
        value = record.extra.get(key)
        if isinstance(value, str) and value.strip():
            return product_stem(value.rsplit("/", 1)[-1])
    return stem


def _extra(record: ProductRecord, keys: Iterable[str]) -> Any:
    for key in keys:
        value = record.extra.get(key)
        if value not in (None, ""):
            return value
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{8}T\d{6}", text):
                return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
            return parse_utc(text)
        except ValueError:
            return None
    return None


def _as_baseline(value: Any) -> tuple[int, ...] | None:
    """A processing baseline as comparable numbers: ``"05.10"``, ``"N0510"``, ``"0510"``, ``5.1`` or ``"003.71"``."""
    if value is None:
        return None
    text = str(value).strip().upper().removeprefix("N")
    if re.fullmatch(r"\d{4}", text):
        return (int(text[:2]), int(text[2:]))
    if re.fullmatch(r"\d+(\.\d+)*", text):
        return tuple(int(part) for part in text.split("."))
    return None


def _show_baseline(version: tuple[int, ...]) -> str:
    return ".".join(f"{part:02d}" for part in version)


@dataclass(frozen=True)
class _Version:
    """What orders reprocessed versions of one product: baseline, generation time, then id (deterministic)."""

    baseline: tuple[int, ...] | None
    generated: datetime | None
    online: bool
    product_id: str

    def key(self) -> tuple[Any, ...]:
        return (
            self.baseline or (),
            self.generated or datetime.min.replace(tzinfo=timezone.utc),
            self.online,
            self.product_id,
        )


def _version(record: ProductRecord, name: str) -> _Version:
    """The processing version: an S2 name's baseline and generation time, else what the catalogue adds."""
    info = _full_name(name)
    if info is not None and info.family == "S2":
        return _Version(_as_baseline(info.baseline), _as_time(info.generation), record.online, record.product_id)
    baseline = _as_baseline(_extra(record, _BASELINE_KEYS))
    generated = _as_time(_extra(record, _GENERATION_KEYS))
    return _Version(baseline, generated, record.online, record.product_id)


def _datatake_key(record: ProductRecord, name: str) -> tuple[Any, ...] | None:
    """What reprocessed versions of one product share; None when the name does not tell."""
    info = _full_name(name)
    if info is None:
        return None
    start = f"{info.start:%Y%m%dT%H%M%S}"
    if info.family == "S2":
        return ("S2", info.mission, info.level, start, info.relative_orbit, info.tile_id)
    return ("S1", info.mission, info.kind, start, info.stop, info.absolute_orbit, info.datatake)


def _why(winner: _Version, loser: _Version) -> str:
    if winner.baseline and loser.baseline and winner.baseline != loser.baseline:
        return f"baseline {_show_baseline(winner.baseline)} > {_show_baseline(loser.baseline)}"
    if winner.generated and loser.generated and winner.generated != loser.generated:
        same = f"same baseline {_show_baseline(winner.baseline)}, " if winner.baseline else ""
        return f"{same}generated {winner.generated:%Y-%m-%dT%H:%M:%S} > {loser.generated:%Y-%m-%dT%H:%M:%S}"
    if winner.baseline and not loser.baseline:
        return f"baseline {_show_baseline(winner.baseline)} known, the other's not"
    if winner.online != loser.online:
        return "same processing as far as the catalogue tells; this one is online"
    return "no processing version known for either: the later product id is kept"


def deduplicate(records: Sequence[ProductRecord]) -> Selection:
    """Drop reprocessed duplicates: of the products of one datatake (S2: same mission, level, sensing start,
    relative orbit and tile; S1: same mission, mode/type/polarisation, start/stop, absolute orbit and datatake
    id) keep the newest processing baseline, then the newest generation time (then online, then the greater id
    so the choice is deterministic). The same product id listed twice (e.g. by two providers) keeps the first.
    Records whose names do not tell the datatake are kept as they are.
    """
    groups: dict[tuple[Any, ...], list[tuple[int, ProductRecord, _Version]]] = {}
    first_by_id: dict[str, int] = {}
    dropped: list[DroppedProduct] = []
    drop_index: set[int] = set()
    for index, record in enumerate(records):
        if record.product_id in first_by_id:
            first = records[first_by_id[record.product_id]]
            dropped.append(DroppedProduct(record, f"duplicate of {first.product_id} listed by {first.provider}"))
            drop_index.add(index)
            continue
        first_by_id[record.product_id] = index
        name = _safe_name(record)
        key = _datatake_key(record, name)
        if key is not None:
            groups.setdefault(key, []).append((index, record, _version(record, name)))
    for members in groups.values():
        if len(members) < 2:
            continue
        best = max(members, key=lambda member: member[2].key())
        for index, record, version in members:
            if index == best[0]:
                continue
            reason = f"superseded by {best[1].product_id} ({_why(best[2], version)})"
            dropped.append(DroppedProduct(record, reason))
            drop_index.add(index)
            log.info("dropped %s: %s", record.product_id, reason)
    kept = tuple(record for index, record in enumerate(records) if index not in drop_index)
    return Selection(kept, tuple(dropped))


# ---------------------------------------------------------------------------------------------------------------
# minimum cover


def _acquisition_key(record: ProductRecord) -> tuple[Any, ...]:
    """Products of one acquisition: S2 same mission, level, sensing day and relative orbit; S1 same mission,
    product kind and datatake (or absolute orbit, or relative orbit and day when the name does not tell)."""
    name = _safe_name(record)
    info = _full_name(name)
    if info is not None and info.family == "S2":
        return ("S2", info.mission, record.product_type, f"{info.start:%Y%m%d}", info.relative_orbit)
    if info is not None:
        return ("S1", info.mission, info.kind, info.datatake)
    day = record.sensing_time.astimezone(timezone.utc).date().isoformat()
    if record.family == "S1":
        datatake = _extra(record, ("datatake_id", "s1:datatake_id"))
        if datatake is not None:
            return ("S1", record.mission, record.product_type, "datatake", str(datatake).upper())
        orbit = _extra(record, ("absolute_orbit", "sat:absolute_orbit"))
        if orbit is not None:
            return ("S1", record.mission, record.product_type, "orbit", int(orbit))
    return (record.family, record.mission, record.product_type, day, record.relative_orbit)


def _projector(epsg: int) -> Any:
    densify = POLAR_DENSIFY_DEGREES if is_polar_epsg(epsg) else None

    def project(geometry: BaseGeometry) -> BaseGeometry:
        out = project_lonlat(geometry, epsg, densify)
        return out if out.is_valid else shapely.make_valid(out)

    return project


def _as_roi(roi: ROI | BaseGeometry) -> ROI:
    return roi if isinstance(roi, ROI) else ROI.from_geometry(roi, key="roi")


def minimum_cover(records: Sequence[ProductRecord], roi: ROI | BaseGeometry) -> Selection:
    """Per acquisition, the fewest S2 tiles / S1 slices whose footprints cover the ROI.

    Greedy set cover on the ROI area each product adds, with areas in the ROI's UTM zone (not degrees; UPS
    for a polar ROI) and unwrapped footprints, so products across the antimeridian count what they cover;
    equal gains go to the smaller product id. Afterwards a product whose part of the ROI the others cover
    too is removed. A product adding less than 0.1 % of the ROI area is dropped (``"adds no ROI coverage
    beyond <ids>"``, or ``"covers less than 0.1 % of the ROI"`` when nothing of its acquisition does).
    Records without a footprint are kept (their coverage is unknown). ``roi`` is a lon/lat shapely polygon
    or an :class:`ROI`. Kept records are in input order.
    """
    region = _as_roi(roi)
    epsg = region.grid_epsg()
    project = _projector(epsg)
    roi_m = region.projected(epsg)
    roi_m = roi_m if roi_m.is_valid else shapely.make_valid(roi_m)
    roi_area = roi_m.area
    groups: dict[tuple[Any, ...], dict[int, BaseGeometry]] = {}
    for index, record in enumerate(records):
        footprint = record.footprint_unwrapped
        if footprint is not None and not footprint.is_empty:
            part = project(footprint).intersection(roi_m)
            groups.setdefault(_acquisition_key(record), {})[index] = part
    drop: dict[int, str] = {}
    for parts in groups.values():
        drop.update(_cover_group(records, parts, roi_area))
    kept = tuple(record for index, record in enumerate(records) if index not in drop)
    dropped = tuple(DroppedProduct(records[index], drop[index]) for index in sorted(drop))
    for item in dropped:
        log.info("dropped %s: %s", item.product_id, item.reason)
    return Selection(kept, dropped)


def _cover_group(records: Sequence[ProductRecord], parts: dict[int, BaseGeometry], roi_area: float) -> dict[int, str]:
    """Indices of one acquisition's products to drop, with reasons (greedy cover, then a redundancy pass)."""
    threshold = MIN_GAIN_FRACTION * roi_area
    tie = 1e-9 * roi_area
    candidates = sorted(parts, key=lambda i: records[i].product_id)
    chosen: list[int] = []
    covered: BaseGeometry = shapely.Polygon()
    while True:
        best, best_gain = -1, -math.inf
        for index in candidates:
            if index in chosen:
                continue
            gain = parts[index].difference(covered).area if not covered.is_empty else parts[index].area
            if gain > best_gain + tie:  # candidates are in id order, so a tie keeps the smaller id
                best, best_gain = index, gain
        if best < 0 or best_gain < threshold:
            break
        chosen.append(best)
        covered = shapely.union(covered, parts[best])
    # a pick made redundant by later ones (e.g. a first big slice overlapped by two later ones) is removed
    for index in list(reversed(chosen)):
        others = [parts[i] for i in chosen if i != index]
        if not others:
            continue
        rest = shapely.union_all(others)
        if parts[index].difference(rest).area < threshold:
            chosen.remove(index)
    drop: dict[int, str] = {}
    names = ", ".join(sorted(records[i].product_id for i in chosen))
    for index in candidates:
        if index in chosen:
            continue
        if chosen:
            drop[index] = f"adds no ROI coverage beyond {names}"
        else:
            share = 100.0 * parts[index].area / roi_area if roi_area > 0 else 0.0
            drop[index] = f"covers less than {MIN_GAIN_FRACTION * 100:g} % of the ROI ({share:.3g} %)"
    return drop


# ---------------------------------------------------------------------------------------------------------------
# cloud cover


def cloud_cover_in_range(record: ProductRecord, lo: float, hi: float) -> CloudCheck:
    """Whether a product's tile-level cloud cover (percent) lies in ``[lo, hi]``.

    S1 products always pass. An S2 product whose catalogue gives no cloud cover passes with a note saying so
    (the ROI-level cloud check later still applies). Raises :class:`~senprep_core.errors.ConfigError` for a
    range outside 0..100 or with ``lo > hi``.
    """
    low, high = check_cloud_range((lo, hi), "sentinel2.cloud_cover")
    if record.family == "S1":
        return CloudCheck(True)
    if record.cloud_cover is None:
        return CloudCheck(True, f"no tile cloud cover in the {record.provider} catalogue: kept without the range check")
    value = float(record.cloud_cover)
    if low <= value <= high:
        return CloudCheck(True)
    return CloudCheck(False, f"tile cloud cover {value:.1f} % outside {low:g}-{high:g} %")
