"""What a work unit fetches before it reads: its remote products (only the files / COG windows the run
reads) and, for the S1 chain, auxiliary data (precise orbits from CDSE, Copernicus DEM GLO-30 tiles).

Auxiliary data is named in the ``sentinel1`` section:

- ``orbit_folder: cdse`` (or ``cdse:URL`` for a CDSE-protocol mirror): the precise orbit (AUX_POEORB)
  covering each product, else the restituted one (AUX_RESORB), fetched into ``<cache>/orbits``;
  the annotation orbit is used (and recorded) when CDSE has neither;
- ``dem: glo30`` (or ``glo30:URL`` for a mirror of the tile bucket): the GLO-30 tiles under the ROI,
  fetched into ``<cache>/dem/copernicus-glo30``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from shapely.geometry.base import BaseGeometry

from senprep_core.bands import canonical_s2_band, parse_s1_bands
from senprep_core.catalog import REMOTE_SOURCES, open_provider
from senprep_core.catalog.cdse import CdseProvider
from senprep_core.catalog.records import FetchRequest, ProductRecord
from senprep_core.errors import OrbitError
from senprep_core.events import EventCallback, Message, no_op
from senprep_core.fetch.cache import default_cache_dir
from senprep_core.fetch.credentials import CredentialFiles
from senprep_core.fetch.dem_tiles import GLO30_BASE_URL, fetch_dem_tiles
from senprep_core.fetch.slots import SlotPlan
from senprep_core.s1.dem import DemSource
from senprep_core.s1.metadata import S1Metadata
from senprep_core.unit.model import UnitSpec

log = logging.getLogger(__name__)

ORBIT_PREFIX = "cdse"
DEM_PREFIX = "glo30"


@dataclass(frozen=True)
class FetchOptions:
    """How remote products are fetched: the shared cache folder, the run's credentials files (a
    :class:`~senprep_core.fetch.credentials.CredentialFiles`; a bare path is the Copernicus file), ROI mode
    (per-file downloads / COG window reads) or whole products, and ``connections``: how the workers share
    per-account connection limits (the driver of a run sets it, see :mod:`senprep_core.fetch.slots`)."""

    cache_dir: Path
    credentials: CredentialFiles | str | None = None
    roi_only: bool = True
    verify: bool = True  # check local products' files against their manifest before reading them
    connections: SlotPlan | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "credentials", CredentialFiles.of(self.credentials))

    @property
    def files(self) -> CredentialFiles:
        """The credentials files (normalised)."""
        return CredentialFiles.of(self.credentials)

    @classmethod
    def default(cls) -> FetchOptions:
        """The shared user cache, no credentials file, ROI mode."""
        return cls(default_cache_dir())


def s2_layers(spec: UnitSpec) -> tuple[str, ...]:
    """The canonical S2 bands a run reads (``B04``, ``SCL``, ``scl_cloud_shadow``, ``opaque_clouds``...).

    Providers map them onto files: each band at its native resolution, SCL for ``scl_*`` masks,
    MSK_CLASSI for the cloud layers; SCL (L2A) or the cloud masks (L1C) always come along, since the
    ROI's valid and cloud fractions are read from them.
    """
    return tuple(dict.fromkeys(canonical_s2_band(b) for b in spec.s2.bands))


def s1_layers(spec: UnitSpec) -> tuple[str, ...]:
    """The polarisations an S1 run reads (``VV``, ``VH``...); empty means the product's first one."""
    pols = [r.polarisation for r in parse_s1_bands(spec.s1.bands) if r.polarisation is not None]
    return tuple(dict.fromkeys(pols))


def cloud_probe_layers(spec: UnitSpec) -> tuple[str, ...]:
    """What an ROI cloud threshold is judged from: SCL (L2A), or the L1C cloud masks and a first band."""
    return ("SCL",) if spec.s2.level == "L2A" else ("opaque_clouds", canonical_s2_band(spec.s2.bands[0]))


def is_remote(record: ProductRecord) -> bool:
    """True when the record must be fetched from its provider before it is read."""
    return record.provider.partition(":")[0] in REMOTE_SOURCES


def layers_of(record: ProductRecord, spec: UnitSpec) -> tuple[str, ...]:
    """What a unit reads of ``record``: S2 bands, or S1 polarisations."""
    return s2_layers(spec) if record.family == "S2" else s1_layers(spec)


def fetch_record(
    record: ProductRecord,
    spec: UnitSpec,
    options: FetchOptions | None,
    emit: EventCallback = no_op,
    layers: tuple[str, ...] | None = None,
) -> ProductRecord:
    """Make ``record`` readable through its provider. Records of local folders (and of providers given as
    objects to the Python API) are read as they are."""
    if options is None or not is_remote(record):
        return record
    provider = open_provider(record.provider, credentials=options.files, slots=options.connections)
    if layers is None:
        layers = layers_of(record, spec)
    request = FetchRequest(options.cache_dir, layers, options.roi_only, emit)
    emit(Message(f"fetching {record.product_id} from {record.provider}"))
    fetched = provider.fetch(record, request)
    log.info("%s ready at %s", record.product_id, fetched.href)
    return replace(fetched, provider=record.provider)


# ----- auxiliary data of the S1 chain -----------------------------------------------------------------


def is_fetched_orbit(value: str | None) -> bool:
    """True when ``sentinel1.orbit_folder`` asks for orbits fetched from CDSE."""
    return value is not None and (value == ORBIT_PREFIX or value.startswith(ORBIT_PREFIX + ":"))


def is_fetched_dem(value: str | None) -> bool:
    """True when ``sentinel1.dem`` asks for GLO-30 tiles fetched for the ROI."""
    return value is not None and (value == DEM_PREFIX or value.startswith(DEM_PREFIX + ":"))


def fetched_orbit_folder(value: str, meta: S1Metadata, cache_dir: Path) -> Path:
    """The orbit folder holding an EOF file covering ``meta``'s acquisition (POEORB, else RESORB)."""
    provider = open_provider(value)
    if not isinstance(provider, CdseProvider):  # pragma: no cover - open_provider("cdse...") is one
        raise OrbitError(f"'{value}' is not a CDSE source")
    folder = Path(cache_dir) / "orbits"
    try:
        provider.fetch_orbit(meta.mission, meta.start_time, meta.stop_time, "POEORB", cache_dir=folder)
    except OrbitError as exc:
        log.warning("no precise orbit for %s (%s); trying the restituted one", meta.product_id, exc)
        try:
            provider.fetch_orbit(meta.mission, meta.start_time, meta.stop_time, "RESORB", cache_dir=folder)
        except OrbitError as exc2:
            log.warning("no orbit file for %s from CDSE (%s): the annotation orbit is used", meta.product_id, exc2)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fetched_dem(value: str, roi: BaseGeometry, cache_dir: Path) -> DemSource:
    """The DEM source of the GLO-30 tiles under ``roi`` (lon/lat), fetched into the cache once."""
    base = value.partition(":")[2] or GLO30_BASE_URL
    folder = fetch_dem_tiles(roi, Path(cache_dir), base_url=base)
    return DemSource("copernicus", str(folder))
