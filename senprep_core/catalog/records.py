"""What every provider returns: product records and search queries (value objects)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shapely import wkt
from shapely.geometry.base import BaseGeometry

from senprep_core.events import EventCallback, no_op
from senprep_core.timeutil import DateWindow, parse_utc

_S2_NAME = re.compile(
    r"^(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<start>\d{8}T\d{6})_N(?P<baseline>\d{4})_R(?P<orbit>\d{3})_"
    r"T(?P<tile>\d{2}[A-Z]{3})_(?:(?P<generation>\d{8}T\d{6})$)?"
)
_S1_NAME = re.compile(
    r"^(?P<mission>S1[A-D])_(?P<mode>IW|EW|SM|S\d|WV)_(?P<type>GRD|SLC|OCN|RAW)(?P<res>[FHM_])_(?P<level>\d)(?P<class>[SA])"
    r"(?P<pol>SH|SV|DH|DV|HH|VV|HV|VH)_(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})_(?P<orbit>\d{6})_"
    r"(?:(?P<datatake>[0-9A-F]{6})_(?P<uid>[0-9A-F]{4})$)?"
)
_SAFE_SUFFIX = re.compile(r"(\.SAFE)?(\.zip)?$", re.IGNORECASE)
#: The polarisations of an S1 name's polarisation code (``1SDV`` -> VV + VH).
S1_NAME_POLARISATIONS = {"SH": ("HH",), "SV": ("VV",), "DH": ("HH", "HV"), "DV": ("VV", "VH"), "HH": ("HH",),
                         "VV": ("VV",), "HV": ("HV",), "VH": ("VH",)}  # fmt: skip


def product_stem(name: str) -> str:
    """A product name without ``.SAFE`` / ``.zip`` (and surrounding white space)."""
    return _SAFE_SUFFIX.sub("", name.strip())


def _utc(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class NameInfo:
    """What a Sentinel product name alone tells.

    Every name gives family, mission, product type, start time and the relative orbit (S1: derived from the
    absolute orbit of S1A / S1B). S2 names add level, tile, baseline (``"0500"``) and generation time;
    S1 names add mode, polarisation code (``"DV"``), stop time, absolute orbit, datatake and unique id.
    ``complete`` is True when the name runs to its last field (S2 generation time, S1 unique id), which
    is what tells reprocessed versions of one acquisition apart.
    """

    family: str  # "S1" | "S2"
    mission: str
    product_type: str  # "S2MSI2A", "S2MSI1C", "GRD", "SLC"
    start: datetime
    tile_id: str | None = None
    relative_orbit: int | None = None
    level: str | None = None  # "L1C" | "L2A" (S2)
    baseline: str | None = None  # "0500" (S2)
    generation: str | None = None  # "20230601T140000" (S2, complete names)
    mode: str | None = None  # "IW" (S1)
    kind: str | None = None  # "IW_GRDH_1SDV" (S1)
    polarisation_code: str | None = None  # "DV" (S1)
    stop: str | None = None  # "20220401T052319" (S1)
    absolute_orbit: int | None = None  # (S1)
    datatake: str | None = None  # "05A5B4" (S1, complete names)
    complete: bool = False

    @property
    def polarisations(self) -> tuple[str, ...] | None:
        """The polarisations an S1 name tells (``1SDV`` -> VV, VH); None for S2."""
        return S1_NAME_POLARISATIONS.get(self.polarisation_code) if self.polarisation_code else None


def parse_product_name(name: str) -> NameInfo | None:
    """Parse a SAFE product name (with or without ``.SAFE`` / ``.zip``); None if it is not one."""
    stem = product_stem(name)
    m = _S2_NAME.match(stem + ("" if _S2_NAME.match(stem) else "_"))
    if m:
        level = m["level"]
        return NameInfo(
            family="S2",
            mission=m["mission"],
            product_type="S2MSI2A" if level == "L2A" else "S2MSI1C",
            start=_utc(m["start"]),
            tile_id=m["tile"],
            relative_orbit=int(m["orbit"]),
            level=level,
            baseline=m["baseline"],
            generation=m["generation"],
            complete=m["generation"] is not None,
        )
    m = _S1_NAME.match(stem + ("" if _S1_NAME.match(stem) else "_"))
    if m:
        mission, absolute = m["mission"], int(m["orbit"])
        offset = {"S1A": 73, "S1B": 27}.get(mission, 0)
        kind = f"{m['mode']}_{m['type']}{m['res']}_{m['level']}{m['class']}{m['pol']}"
        return NameInfo(
            family="S1",
            mission=mission,
            product_type=m["type"],
            start=_utc(m["start"]),
            relative_orbit=((absolute - offset) % 175) + 1 if offset else None,
            mode=m["mode"],
            kind=kind,
            polarisation_code=m["pol"],
            stop=m["stop"],
            absolute_orbit=absolute,
            datatake=m["datatake"],
            complete=m["uid"] is not None,
        )
    return None


@dataclass(frozen=True)
class ProductRecord:
    """One product a provider found: identity, time, footprint, cloud cover and where it is."""

    product_id: str
    family: str  # "S1" | "S2"
    mission: str  # "S2A", "S1B"...
    product_type: str  # "S2MSI2A", "S2MSI1C", "GRD"
    sensing_time: datetime
    footprint: BaseGeometry | None  # lon/lat
    href: str
    provider: str
    cloud_cover: float | None = None
    tile_id: str | None = None
    relative_orbit: int | None = None
    size_bytes: int | None = None
    online: bool = True
    orbit_direction: str | None = None  # S1: "ascending" | "descending"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def level(self) -> str:
        """ "L2A", "L1C" or the S1 product type."""
        return {"S2MSI2A": "L2A", "S2MSI1C": "L1C"}.get(self.product_type, self.product_type)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (footprint as WKT)."""
        return {
            "product_id": self.product_id,
            "family": self.family,
            "mission": self.mission,
            "product_type": self.product_type,
            "level": self.level,
            "sensing_time": self.sensing_time.isoformat().replace("+00:00", "Z"),
            "footprint": self.footprint.wkt if self.footprint is not None else None,
            "href": self.href,
            "provider": self.provider,
            "cloud_cover": self.cloud_cover,
            "tile_id": self.tile_id,
            "relative_orbit": self.relative_orbit,
            "size_bytes": self.size_bytes,
            "online": self.online,
            "orbit_direction": self.orbit_direction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            product_id=data["product_id"],
            family=data["family"],
            mission=data["mission"],
            product_type=data["product_type"],
            sensing_time=parse_utc(data["sensing_time"]),
            footprint=wkt.loads(data["footprint"]) if data.get("footprint") else None,
            href=data["href"],
            provider=data["provider"],
            cloud_cover=data.get("cloud_cover"),
            tile_id=data.get("tile_id"),
            relative_orbit=data.get("relative_orbit"),
            size_bytes=data.get("size_bytes"),
            online=data.get("online", True),
            orbit_direction=data.get("orbit_direction"),
        )


@dataclass(frozen=True)
class SearchQuery:
    """What to look for: ROI (lon/lat), date windows, product types and a tile cloud-cover range."""

    roi: BaseGeometry
    windows: tuple[DateWindow, ...]
    product_types: tuple[str, ...]  # e.g. ("S2MSI2A",) or ("S2MSI2A", "GRD")
    cloud_cover: tuple[float, float] = (0.0, 100.0)

    def in_windows(self, when: datetime) -> bool:
        return any(w.contains(when) for w in self.windows)


@dataclass(frozen=True)
class ProductProblem:
    """A product a provider could not read; reported in the run report instead of stopping the run."""

    name: str
    href: str
    error_type: str
    message: str


@dataclass(frozen=True)
class SearchResult:
    """Matching products, sorted by time then id, plus products that could not be read."""

    products: tuple[ProductRecord, ...]
    problems: tuple[ProductProblem, ...] = ()


@dataclass(frozen=True)
class FetchRequest:
    """What a run needs of one product, so a provider fetches no more than that.

    ``bands`` are canonical S2 band names (``B04``, ``SCL``...) or S1 polarisations (``VV``, ``VH``);
    ``roi_only`` asks for per-file / COG-window access instead of whole-product downloads where the source
    allows it. Downloads go to ``cache_dir`` (shared by every run) and report ``BytesProgress`` events.
    """

    cache_dir: Path
    bands: tuple[str, ...] = ()
    roi_only: bool = True
    on_event: EventCallback = field(default=no_op, compare=False)
