"""What every provider returns: product records and search queries (value objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shapely import wkt
from shapely.geometry.base import BaseGeometry

from senprep_core.events import EventCallback, no_op
from senprep_core.fetch.redact import scrub, scrub_url
from senprep_core.geo.antimeridian import lonlat_intersects, normalise_lonlat
from senprep_core.timeutil import DateWindow, parse_utc


@dataclass(frozen=True)
class ProductRecord:
    """One product a provider found: identity, time, footprint, cloud cover and where it is.

    The footprint is normalised once, when the record is made: ``footprint`` holds it in RFC 7946
    form (cut at ±180 into a MultiPolygon when it crosses the antimeridian, however the catalogue
    gave it: split, wrapped round the globe or with longitudes past 180) and ``footprint_unwrapped``
    with continuous longitudes, for intersection, cover and coverage tests (see
    :mod:`senprep_core.geo.antimeridian`). Both are the same object for a footprint that does not cross.
    """

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
    #: derived from ``footprint`` when the record is made (a value passed in is replaced)
    footprint_unwrapped: BaseGeometry | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.footprint is None:
            object.__setattr__(self, "footprint_unwrapped", None)
            return
        split, unwrapped = normalise_lonlat(self.footprint)
        object.__setattr__(self, "footprint", split)
        object.__setattr__(self, "footprint_unwrapped", unwrapped)

    def meets(self, roi: BaseGeometry) -> bool:
        """Whether the footprint meets a lon/lat region (unwrapped form, e.g. ``ROI.geometry``), across the
        antimeridian too; True when the footprint is unknown (as the catalog searches keep such products)."""
        if self.footprint_unwrapped is None:
            return True
        return lonlat_intersects(self.footprint_unwrapped, roi)

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
    """A product a provider could not read; reported in the run report instead of stopping the run.

    ``message`` and ``href`` may hold a server's words or a signed link: secrets are masked when it is made."""

    name: str
    href: str
    error_type: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "href", scrub_url(self.href))
        object.__setattr__(self, "message", scrub(self.message))


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
