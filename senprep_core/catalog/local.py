"""The local provider: a folder of S1/S2 products (.SAFE folders, .zip archives, AWS tile folders).

Archives are read in place (GDAL /vsizip/), never extracted. A product that cannot be read is
reported as a :class:`ProductProblem` and the scan goes on.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from shapely.geometry import Polygon

from senprep_core.catalog.records import FetchRequest, ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import MetadataError, ProductNotFoundError, SenprepError
from senprep_core.geo.projection import project
from senprep_core.product_names import parse_product_name
from senprep_core.productfs import ProductLocation
from senprep_core.s2.product import open_s2_metadata

log = logging.getLogger(__name__)

_GML_COORDS = re.compile(rb"<gml:coordinates>([^<]+)</gml:coordinates>")
_PASS = re.compile(rb"<s1:pass>\s*(ASCENDING|DESCENDING)\s*</s1:pass>", re.IGNORECASE)


def _candidates(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or ".tmp-" in p.name:
            continue
        if (
            p.suffix.lower() == ".zip"
            or p.name.upper().endswith(".SAFE")
            or (p.is_dir() and ((p / "metadata.xml").exists() or any(p.glob("MTD_MSIL*"))))
        ):
            out.append(p)
    return out


def _s1_record(location: ProductLocation, provider: str) -> ProductRecord:
    info = parse_product_name(location.name)
    if info is None:
        raise MetadataError(f"{location.path}: not a Sentinel product name")
    footprint = None
    try:
        manifest = location.read_bytes("manifest.safe")
    except SenprepError as exc:
        raise MetadataError(f"{location.path}: manifest.safe is missing or unreadable ({exc})") from exc
    m = _GML_COORDS.search(manifest)
    if m:
        pairs = [tuple(float(v) for v in c.split(",")) for c in m.group(1).decode().split()]
        footprint = Polygon([(lon, lat) for lat, lon in pairs])
    return ProductRecord(
        product_id=location.name,
        family="S1",
        mission=info.mission,
        product_type=info.product_type,
        sensing_time=info.start,
        footprint=footprint,
        href=str(location.path),
        provider=provider,
        relative_orbit=info.relative_orbit,
        size_bytes=location.path.stat().st_size if location.is_zip else None,
        orbit_direction=m_pass.group(1).decode().lower() if (m_pass := _PASS.search(manifest)) else None,
    )


def _s2_record(path: Path, provider: str) -> ProductRecord:
    meta = open_s2_metadata(path)
    footprint = meta.footprint
    if footprint is None and meta.geocoding:
        geo = meta.geocoding[min(meta.geocoding)]
        tile = geo.grid(meta.epsg).bounds
        footprint = project(Polygon.from_bounds(tile.left, tile.bottom, tile.right, tile.top), meta.epsg, 4326)
    return ProductRecord(
        product_id=meta.product_id,
        family="S2",
        mission=meta.mission,
        product_type=meta.product_type,
        sensing_time=meta.sensing_time,
        footprint=footprint,
        href=str(path),
        provider=provider,
        cloud_cover=meta.cloud_cover,
        tile_id=meta.tile_id,
        relative_orbit=meta.relative_orbit,
        size_bytes=path.stat().st_size if path.is_file() else None,
    )


class LocalProvider:
    """Search a local folder of products with the same interface as the remote providers."""

    whole_products = True  # its products are whole .SAFE folders / .zip archives

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ProductNotFoundError(
                f"local source folder '{self.folder}' does not exist; "
                "give --source local:DIR with a folder of .SAFE/.zip products"
            )
        self.name = f"local:{self.folder}"

    def scan(self) -> SearchResult:
        """Every product in the folder, and every entry that looked like one but could not be read."""
        records: list[ProductRecord] = []
        problems: list[ProductProblem] = []
        for path in _candidates(self.folder):
            try:
                info = parse_product_name(path.name)
                if info is not None and info.family == "S1":
                    records.append(_s1_record(ProductLocation.open(path), self.name))
                else:
                    records.append(_s2_record(path, self.name))
            except SenprepError as exc:
                log.warning("cannot read %s: %s", path.name, exc)
                problems.append(ProductProblem(path.name, str(path), type(exc).__name__, str(exc)))
        records.sort(key=lambda r: (r.sensing_time, r.product_id))
        return SearchResult(tuple(records), tuple(problems))

    def search(self, query: SearchQuery) -> SearchResult:
        """Products matching the query. Unreadable products are kept as problems when their name
        places them inside the date windows (or cannot be parsed), so the run report shows them."""
        scanned = self.scan()
        lo, hi = query.cloud_cover
        products = [
            r
            for r in scanned.products
            if r.product_type in query.product_types
            and query.in_windows(r.sensing_time)
            and r.meets(query.roi)
            and (r.cloud_cover is None or lo <= r.cloud_cover <= hi)
        ]
        problems = []
        for p in scanned.problems:
            info = parse_product_name(p.name)
            if info is None or (info.product_type in query.product_types and query.in_windows(info.start)):
                problems.append(p)
        return SearchResult(tuple(products), tuple(problems))

    def fetch(self, record: ProductRecord, request: FetchRequest) -> ProductRecord:
        """Local products are read in place: nothing to fetch."""
        return record
