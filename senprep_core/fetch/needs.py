"""What a run needs of each product (so ROI-mode fetching asks for nothing more), and the fetch step
every work unit takes before it reads a product."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from senprep_core.bands import canonical_s2_band
from senprep_core.catalog.records import FetchRequest, ProductRecord
from senprep_core.config import Config
from senprep_core.events import EventCallback, Message, no_op
from senprep_core.s1.terrain import parse_s1_bands
from senprep_core.units import RoiStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchOptions:
    """How remote products are fetched: the shared cache folder, an optional credentials file, and
    ROI mode (per-file downloads / COG window reads) or whole products."""

    cache_dir: Path
    credentials: str | None = None
    roi_only: bool = True


def s2_layers(config: Config) -> tuple[str, ...]:
    """The canonical S2 bands a run reads (``B04``, ``SCL``, ``scl_cloud_shadow``, ``opaque_clouds``...).

    Providers map them onto files: each band at its native resolution, SCL for ``scl_*`` masks,
    MSK_CLASSI for the cloud layers; SCL (L2A) or the cloud masks (L1C) always come along, since the
    ROI's valid and cloud fractions are read from them.
    """
    return tuple(dict.fromkeys(canonical_s2_band(b) for b in config.bands_s2))


def s1_layers(config: Config) -> tuple[str, ...]:
    """The polarisations an S1 run reads (``VV``, ``VH``...); empty means the product's first one."""
    pols = [r.polarisation for r in parse_s1_bands(config.bands_s1) if r.polarisation is not None]
    return tuple(dict.fromkeys(pols))


def fetch_record(
    record: ProductRecord,
    config: Config,
    options: FetchOptions | None,
    emit: EventCallback = no_op,
    layers: tuple[str, ...] | None = None,
) -> ProductRecord:
    """Make ``record`` readable through its provider. Records of local folders (and of providers given as
    objects to the Python API) are read as they are."""
    from senprep_core.catalog import REMOTE_SOURCES, open_provider

    if options is None or record.provider.partition(":")[0] not in REMOTE_SOURCES:
        return record

    provider = open_provider(record.provider, credentials=options.credentials)
    if layers is None:
        layers = s2_layers(config) if record.family == "S2" else s1_layers(config)
    request = FetchRequest(options.cache_dir, layers, options.roi_only, emit)
    emit(Message(f"fetching {record.product_id} from {record.provider}"))
    fetched = provider.fetch(record, request)
    log.info("%s ready at %s", record.product_id, fetched.href)
    return replace(fetched, provider=record.provider)


def cloud_precheck(
    unit_id: str, records: list[ProductRecord], config: Config, options: FetchOptions | None, emit: EventCallback
) -> tuple[str, RoiStats] | None:
    """With an ROI cloud threshold (``sentinel2.max_roi_cloud``, or ``cloud_mask_filtering``), the ROI cloud
    fraction of each remote S2 product from its cloud layer alone (SCL, or the L1C cloud masks), fetched before
    any band: ``(reason, stats)`` when one is too cloudy, so its bands are never downloaded. None when every
    product passes (or nothing is remote)."""
    from senprep_core.catalog import REMOTE_SOURCES
    from senprep_core.process_s2 import S2Source

    if config.roi_cloud_threshold is None or options is None:
        return None
    for record in records:
        if record.family != "S2" or record.provider.partition(":")[0] not in REMOTE_SOURCES:
            continue
        layer = ("SCL",) if config.s2_level == "L2A" else ("opaque_clouds", canonical_s2_band(config.bands_s2[0]))
        probe = fetch_record(record, config, options, emit, layers=layer)
        source = S2Source(probe, unit_id, config)
        try:
            stats = source.roi_stats()
        finally:
            source.close()
        if stats is None:  # only without a threshold, which returned above
            continue
        reason = source.rejection(stats)
        if reason is not None:
            log.info("%s: %s (from its cloud layer; bands not fetched)", record.product_id, reason)
            return (reason if len(records) == 1 else f"S2: {reason}"), stats
    return None
