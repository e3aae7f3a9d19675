"""Sentinel-1/2 product names (SAFE names, with or without ``.SAFE`` / ``.zip``) and what they tell.

:func:`parse_product_name` reads an S2 name (``S2B_MSIL2A_20220729T113629_N0500_R023_T30UVG_...``) or an
S1 name (``S1A_IW_GRDH_1SDV_20210814T174135_..._039237_04A1F3_1C2B``) into a :class:`NameInfo`;
pure, no I/O. Catalogues, the S2 metadata of STAC items and the outputs all read names through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["S1_NAME_POLARISATIONS", "NameInfo", "parse_product_name", "product_stem"]

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
