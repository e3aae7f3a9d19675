"""The typed records of a run folder and their JSON forms.

Every record is a frozen value object with ``to_dict()`` / ``from_dict()``: the JSON shape of a
unit's manifest (``unit.json``) and of the run report's units is defined here and nowhere else.
Where the files live is :mod:`senprep_core.outputs.run_folder`'s business.

- :class:`PatchEntry`: one written patch (one modality, or both sensors of a pair on one grid);
- :class:`FileRecord`: one file of a unit with its size and fast checksum (xxh3-128);
- :class:`UnitManifest`: what a complete unit holds (written last; it marks the unit complete);
- :class:`UnitResult`: what happened to one unit in one run (the run report's rows).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import xxhash

from senprep_core.catalog.records import ProductRecord
from senprep_core.errors import OutputError
from senprep_core.fetch.redact import scrub, scrub_known
from senprep_core.geo.grid import PixelWindow, TargetGrid
from senprep_core.timeutil import parse_utc

#: The manifest format written by this version (1: before file checksums; such units are redone).
MANIFEST_FORMAT = 2
DIGEST_NAME = "xxh3_128"
_CHUNK = 1 << 20

UnitStatus = Literal["pending", "done", "skipped", "rejected", "failed", "cancelled"]

#: Modality keys of the older members of an S1 stack (``S1_t1`` one acquisition before ``S1``, ``S1_t2``...).
_STACK_ROLE = re.compile(r"S1_t([1-9][0-9]*)")


def stack_roles(n: int) -> tuple[str, ...]:
    """The modality keys of an ``n``-acquisition S1 stack, newest first: ``S1``, ``S1_t1``, ... ``S1_t<n-1>``."""
    return ("S1", *(f"S1_t{i}" for i in range(1, n)))


def is_stack_role(modality: str) -> bool:
    """True for the key of an older stack member (``S1_t1``, ``S1_t2``...)."""
    return _STACK_ROLE.fullmatch(modality) is not None


def time_axis_group(modality: str) -> str:
    """The group a modality's patches share a time axis in (Zarr cube): ``S1`` for every stack member."""
    return "S1" if is_stack_role(modality) else modality


def file_digest(path: Path) -> str:
    """The xxh3-128 checksum of a file (hex): fast enough to verify every patch of a run on each re-run."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileRecord:
    """One file of a unit: its path relative to the run folder, size in bytes and xxh3-128 checksum."""

    path: str
    size: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, DIGEST_NAME: self.digest}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(str(data["path"]), int(data["size"]), str(data[DIGEST_NAME]))


@dataclass(frozen=True)
class SarFacts:
    """What STAC's ``sar`` / ``sat`` fields need of an S1 acquisition."""

    instrument_mode: str | None = None
    product_type: str | None = None
    polarizations: tuple[str, ...] = ()
    orbit_direction: str | None = None
    relative_orbit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "instrument_mode": self.instrument_mode,
            "product_type": self.product_type,
            "polarizations": list(self.polarizations),
            "orbit_direction": self.orbit_direction,
            "relative_orbit": self.relative_orbit,
        }


@dataclass(frozen=True)
class ModalityPatch:
    """One sensor's part of a written patch: its COG and sidecar, bands, acquisition and fractions.

    ``modality`` is the key of its files: ``S2``, ``S1``, ``S1_previous`` (the earlier acquisition of
    a multi-temporal pair) or ``S1_t1``, ``S1_t2``... (the older members of an S1 stack).
    """

    modality: str
    image: str  # the COG, relative to the run folder
    sidecar: str  # the JSON sidecar, relative to the run folder
    bands: tuple[str, ...]
    sensing_time: str  # ISO 8601 UTC ("...Z")
    product_ids: tuple[str, ...]
    platform: str | None
    valid_fraction: float
    cloud_fraction: float | None = None
    sar: SarFacts | None = None

    @property
    def family(self) -> str:
        """``S1`` or ``S2``."""
        return self.modality[:2]

    @property
    def time(self) -> datetime:
        return parse_utc(self.sensing_time)

    def facts(self) -> dict[str, Any]:
        """The JSON facts of this modality (the manifest's ``modalities[<key>]``)."""
        out: dict[str, Any] = {
            "bands": list(self.bands),
            "sensing_time": self.sensing_time,
            "product_ids": list(self.product_ids),
            "platform": self.platform,
            "valid_fraction": self.valid_fraction,
            "cloud_fraction": self.cloud_fraction,
        }
        if self.sar is not None:
            out.update(self.sar.to_dict())
        return out

    @classmethod
    def from_facts(cls, modality: str, facts: dict[str, Any], files: dict[str, str]) -> ModalityPatch:
        sar = None
        if "instrument_mode" in facts or "orbit_direction" in facts:
            sar = SarFacts(
                instrument_mode=facts.get("instrument_mode"),
                product_type=facts.get("product_type"),
                polarizations=tuple(facts.get("polarizations") or ()),
                orbit_direction=facts.get("orbit_direction"),
                relative_orbit=facts.get("relative_orbit"),
            )
        cloud = facts.get("cloud_fraction")
        return cls(
            modality=modality,
            image=files[modality],
            sidecar=files[f"{modality}_metadata"],
            bands=tuple(facts.get("bands") or ()),
            sensing_time=str(facts["sensing_time"]),
            product_ids=tuple(facts.get("product_ids") or ()),
            platform=facts.get("platform"),
            valid_fraction=float(facts["valid_fraction"]),
            cloud_fraction=None if cloud is None else float(cloud),
            sar=sar,
        )


@dataclass(frozen=True)
class PairFacts:
    """The two sensors of a paired patch and their signed time gap (secondary minus primary, hours)."""

    primary: str
    secondary: str
    delta_t_hours: float


@dataclass(frozen=True)
class PatchEntry:
    """One written patch of a unit: its place on the run's grid and its modalities (primary first)."""

    unit_id: str
    patch_id: str
    grid: TargetGrid
    window: PixelWindow
    modalities: tuple[ModalityPatch, ...]
    pair: PairFacts | None = None

    @property
    def primary(self) -> ModalityPatch:
        return self.modalities[0]

    @property
    def modality(self) -> str:
        """The primary modality's key (``S2``, ``S1``)."""
        return self.primary.modality

    def get(self, modality: str) -> ModalityPatch | None:
        """The part of ``modality``, None when the patch has none."""
        return next((m for m in self.modalities if m.modality == modality), None)

    @property
    def files(self) -> dict[str, str]:
        """Asset key -> path relative to the run folder (``S2``, ``S2_metadata``, ``S1``...)."""
        out: dict[str, str] = {}
        for m in self.modalities:
            out[m.modality] = m.image
            out[f"{m.modality}_metadata"] = m.sidecar
        return out

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: the primary's facts at the top, every modality under ``modalities``."""
        out: dict[str, Any] = {
            "unit_id": self.unit_id,
            "patch_id": self.patch_id,
            "modality": self.modality,
            "files": self.files,
            "grid": self.grid.to_dict(),
            "window": asdict(self.window),
            **self.primary.facts(),
            "modalities": {m.modality: m.facts() for m in self.modalities},
        }
        if self.pair is not None:
            out["pair"] = asdict(self.pair)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchEntry:
        """Read a manifest entry; raises :class:`OutputError` naming what is missing."""
        try:
            files = {str(k): str(v) for k, v in data["files"].items()}
            facts = data.get("modalities") or {data["modality"]: data}
            primary = (data.get("pair") or {}).get("primary") or data["modality"]
            order = [primary, *(k for k in facts if k != primary)]
            pair = data.get("pair")
            return cls(
                unit_id=str(data["unit_id"]),
                patch_id=str(data["patch_id"]),
                grid=TargetGrid.from_dict(data["grid"]),
                window=PixelWindow(**{k: int(data["window"][k]) for k in ("row_off", "col_off", "height", "width")}),
                modalities=tuple(ModalityPatch.from_facts(k, facts[k], files) for k in order),
                pair=None if not pair else PairFacts(pair["primary"], pair["secondary"], float(pair["delta_t_hours"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            where = f"{data.get('unit_id', '?')}/{data.get('patch_id', '?')}" if isinstance(data, dict) else "?"
            raise OutputError(
                f"patch entry {where} lacks or mangles {exc}; run the run again to rewrite its unit manifests"
            ) from exc


@dataclass(frozen=True)
class SkippedPatch:
    """A patch of the layout that was not written, and why."""

    patch_id: str
    reason: str


@dataclass(frozen=True)
class RoiFractions:
    """One modality's valid fraction of the ROI, and cloudy fraction of its valid part (None: no cloud layer)."""

    modality: str
    valid: float
    cloud: float | None


@dataclass(frozen=True)
class CollectionSummary:
    """What the run's STAC collection needs of one unit's items: their extent, platforms and count."""

    collection: str
    bbox: tuple[float, float, float, float]  # west, south, east, north (west > east across 180)
    start: str  # ISO 8601 UTC
    end: str
    constellation: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bbox": list(self.bbox)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionSummary:
        return cls(str(data["collection"]), tuple(float(v) for v in data["bbox"]),  # type: ignore[arg-type]
                   str(data["start"]), str(data["end"]), tuple(data.get("constellation") or ()),
                   tuple(data.get("platform") or ()), tuple(data.get("instruments") or ()),
                   int(data.get("items") or 0))  # fmt: skip


@dataclass(frozen=True)
class UnitManifest:
    """A complete unit (``unit.json``): its products, ROI fractions, patches and every file it wrote."""

    unit_id: str
    status: Literal["done", "rejected"]
    fingerprint: str
    products: tuple[ProductRecord, ...]
    fractions: tuple[RoiFractions, ...]
    patches: tuple[PatchEntry, ...] = ()
    skipped: tuple[SkippedPatch, ...] = ()
    files: tuple[FileRecord, ...] = ()
    reason: str | None = None
    stac: tuple[CollectionSummary, ...] = ()  # the unit's STAC items, per collection (empty: none written)

    @property
    def roi_valid_fraction(self) -> float | None:
        return self.fractions[0].valid if self.fractions else None

    @property
    def roi_cloud_fraction(self) -> float | None:
        return self.fractions[0].cloud if self.fractions else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "unit_id": self.unit_id,
            "status": self.status,
            "config_fingerprint": self.fingerprint,
            "product": self.products[0].to_dict() if self.products else None,
            "products": [p.to_dict() for p in self.products],
            "roi_valid_fraction": self.roi_valid_fraction,
            "roi_cloud_fraction": self.roi_cloud_fraction,
            "roi_fractions": {f.modality: {"valid": f.valid, "cloud": f.cloud} for f in self.fractions},
            "patches": [p.to_dict() for p in self.patches],
            "skipped_patches": [asdict(s) for s in self.skipped],
            "files": [f.to_dict() for f in self.files],
            "stac": [c.to_dict() for c in self.stac],
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], products: bool = True) -> UnitManifest:
        """Read a manifest (without its product records when ``products`` is False: what run-level indexes
        need, several times faster); raises :class:`OutputError` for one this version cannot verify or read."""
        if data.get("format") != MANIFEST_FORMAT:
            raise OutputError(f"unit manifest format {data.get('format', 1)} is not {MANIFEST_FORMAT}")
        try:
            return cls(
                unit_id=str(data["unit_id"]),
                status=data["status"],
                fingerprint=str(data["config_fingerprint"]),
                products=tuple(ProductRecord.from_dict(p) for p in data.get("products", [])) if products else (),
                fractions=tuple(
                    RoiFractions(k, float(v["valid"]), None if v["cloud"] is None else float(v["cloud"]))
                    for k, v in (data.get("roi_fractions") or {}).items()
                ),
                patches=tuple(PatchEntry.from_dict(p) for p in data.get("patches", [])),
                skipped=tuple(SkippedPatch(s["patch_id"], s["reason"]) for s in data.get("skipped_patches", [])),
                files=tuple(FileRecord.from_dict(f) for f in data.get("files", [])),
                reason=data.get("reason"),
                stac=tuple(CollectionSummary.from_dict(c) for c in data.get("stac", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OutputError(f"unit manifest {data.get('unit_id', '?')} lacks or mangles {exc}") from exc


@dataclass(frozen=True)
class UnitResult:
    """What happened to one work unit in one run."""

    unit_id: str
    status: UnitStatus
    seconds: float = 0.0
    patches_written: int = 0
    patches_skipped: int = 0
    reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    roi_valid_fraction: float | None = None
    roi_cloud_fraction: float | None = None
    retries: int | None = None  # times the unit was started again after its worker was lost
    worker: str | None = None  # where the attempt that produced this result ran

    def to_dict(self) -> dict[str, Any]:
        """The run report's row (the patches themselves are in the unit's manifest); the error text
        with secrets masked (the unit's process masked what it knew, this one masks what it knows)."""
        d = asdict(self)
        for name in ("error_message", "traceback"):
            if d[name] is not None:
                d[name] = scrub(d[name])
        if d["reason"] is not None:
            d["reason"] = scrub_known(d["reason"])
        return {k: v for k, v in d.items() if v is not None}
