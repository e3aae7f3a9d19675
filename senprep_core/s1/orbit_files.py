"""ESA Sentinel-1 orbit files (AUX_POEORB precise, AUX_RESORB restituted): find, read, select.

Files are named ``S1B_OPER_AUX_POEORB_OPOD_<production>_V<validity start>_<validity stop>.EOF``
(optionally zipped as ``.EOF.zip``); the XML holds ``Earth_Explorer_File/Data_Block/List_of_OSVs/OSV``
with ``UTC=...`` times and Earth-fixed X/Y/Z/VX/VY/VZ. A file orbit replaces the annotation
orbit when one covers the acquisition; otherwise the annotation orbit is used (and logged).
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from lxml import etree

from senprep_core.errors import ConfigError, MetadataError, OrbitError
from senprep_core.s1.annotation import first_text, seconds_since
from senprep_core.s1.model import OrbitStateVectors, S1Image, S1Metadata
from senprep_core.xmlsafe import parse_xml

log = logging.getLogger(__name__)

COVER_MARGIN = 60.0  # seconds an orbit must extend beyond the acquisition on both sides
KEEP_MARGIN = 300.0  # seconds of state vectors kept around the image when restricting a file orbit
MAX_GAP = 60.0  # largest time step allowed between kept state vectors (files sample every 10 s)

_EOF_NAME = re.compile(
    r"^(?P<mission>S1[A-D_])_OPER_AUX_(?P<kind>POEORB|RESORB)_OPOD_(?P<produced>\d{8}T\d{6})_"
    r"V(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})\.EOF(?P<zip>\.zip)?$",
    re.IGNORECASE,
)
_KIND_RANK = {"POEORB": 0, "RESORB": 1}


@dataclass(frozen=True)
class OrbitFileName:
    """What an orbit file name tells: mission, kind, production time and validity period (UTC)."""

    path: Path
    mission: str
    kind: str  # "POEORB" | "RESORB"
    produced: datetime
    validity_start: datetime
    validity_stop: datetime

    def covers(self, start: datetime, stop: datetime, margin: float = COVER_MARGIN) -> bool:
        """True when the validity period holds ``[start - margin, stop + margin]``."""
        pad = timedelta(seconds=margin)
        return self.validity_start <= start - pad and stop + pad <= self.validity_stop


def _utc(stamp: str) -> datetime:
    return datetime.strptime(stamp.upper(), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


def parse_orbit_file_name(path: Path) -> OrbitFileName | None:
    """The parts of an ESA orbit file name, or None when ``path`` is not one."""
    m = _EOF_NAME.match(path.name)
    if m is None:
        return None
    try:
        return OrbitFileName(
            path=path,
            mission=m["mission"].upper(),
            kind=m["kind"].upper(),
            produced=_utc(m["produced"]),
            validity_start=_utc(m["start"]),
            validity_stop=_utc(m["stop"]),
        )
    except ValueError:
        return None


def find_orbit_file(folder: Path, mission: str, start: datetime, stop: datetime) -> Path | None:
    """The best orbit file in ``folder`` (searched recursively) for ``mission`` covering ``[start, stop]``.

    Validity must hold ``[start - 60 s, stop + 60 s]``. Precise (POEORB) files win over restituted
    (RESORB) ones; among equals the most recently produced wins. None when no file fits.
    """
    mission = mission.upper()
    candidates = []
    for path in folder.rglob("*"):
        info = parse_orbit_file_name(path)
        if info is None or not path.is_file():
            continue
        if info.mission not in (mission, "S1_") or not info.covers(start, stop):
            continue
        candidates.append(info)
    if not candidates:
        return None
    best = min(candidates, key=lambda c: (_KIND_RANK[c.kind], -c.produced.timestamp(), c.path.name))
    return best.path


def _read_eof_bytes(path: Path) -> bytes:
    """The XML of an ``.EOF`` file, or of the single ``.EOF`` inside an ``.EOF.zip``."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.upper().endswith(".EOF")]
                if len(names) != 1:
                    raise OrbitError(f"orbit archive {path} holds {len(names)} .EOF files (expected 1); re-download it")
                return zf.read(names[0])
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise OrbitError(f"cannot read orbit file {path} ({exc}); download it again") from exc


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(elem: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in elem if _local(c.tag) == name]


def read_orbit_file(path: Path, epoch: datetime) -> OrbitStateVectors:
    """The state vectors of an ESA orbit file, times in seconds since ``epoch``.

    ``source`` is ``"POEORB:<file name>"`` or ``"RESORB:<file name>"``. Raises :class:`OrbitError`
    for a malformed file (not XML, no OSV, non-numeric values, not Earth-fixed).
    """
    label = f"orbit file {path.name}"
    try:
        root = parse_xml(_read_eof_bytes(path), label)
    except MetadataError as exc:
        raise OrbitError(f"{exc}") from exc
    if _local(root.tag) != "Earth_Explorer_File":
        raise OrbitError(f"{label} is not an ESA Earth Explorer orbit file (root <{_local(root.tag)}>); re-download it")
    header = next(iter(root.iter("{*}Fixed_Header")), None)
    file_type = (first_text(header, "File_Type") if header is not None else None) or ""
    kind = "POEORB" if "POEORB" in file_type.upper() or "POEORB" in path.name.upper() else "RESORB"
    frame = next(iter(root.iter("{*}Ref_Frame")), None)
    if frame is not None and (frame.text or "").strip().upper() not in ("EARTH_FIXED", ""):
        raise OrbitError(f"{label}: reference frame {frame.text!r} is not EARTH_FIXED; use an ESA POEORB/RESORB file")
    osvs = list(root.iter("{*}OSV"))
    if not osvs:
        raise OrbitError(f"{label} holds no Data_Block/List_of_OSVs/OSV; the file is damaged: download it again")
    times: list[str] = []
    values: list[list[str]] = []
    for osv in osvs:
        row = [first_text(osv, key) for key in ("UTC", "X", "Y", "Z", "VX", "VY", "VZ")]
        if any(not v for v in row):
            raise OrbitError(f"{label}: an OSV lacks UTC/X/Y/Z/VX/VY/VZ; the file is damaged: download it again")
        times.append(str(row[0]))
        values.append([str(v) for v in row[1:]])
    try:
        t = seconds_since(times, epoch, label)
        xyz = np.array(values, dtype=np.float64)
    except (MetadataError, ValueError) as exc:
        raise OrbitError(f"{label} holds a malformed time or number ({exc}); download it again") from exc
    if not np.isfinite(xyz).all() or not np.isfinite(t).all():
        raise OrbitError(f"{label} holds non-finite values; download it again")
    order = np.argsort(t, kind="stable")
    t, xyz = t[order], xyz[order]
    keep = np.concatenate([[True], np.diff(t) > 0])  # files may repeat a sample at block boundaries
    return OrbitStateVectors(
        epoch=epoch,
        times=t[keep],
        positions=xyz[keep, :3],
        velocities=xyz[keep, 3:],
        source=f"{kind}:{path.name}",
    )


def restrict_orbit(
    orbit: OrbitStateVectors, start: float, stop: float, margin: float = KEEP_MARGIN
) -> OrbitStateVectors:
    """The samples within ``margin`` seconds of ``[start, stop]``; :class:`OrbitError` when they do not cover it.

    Coverage means samples at or beyond ``start - 60 s`` and ``stop + 60 s`` with no step over 60 s.
    """
    inside = (orbit.times >= start - margin) & (orbit.times <= stop + margin)
    t = orbit.times[inside]
    lo, hi = (orbit.epoch + timedelta(seconds=s) for s in (start - COVER_MARGIN, stop + COVER_MARGIN))
    span = f"{lo.isoformat()} to {hi.isoformat()}"
    if t.size < 2 or t[0] > start - COVER_MARGIN or t[-1] < stop + COVER_MARGIN:
        raise OrbitError(
            f"orbit {orbit.source} does not cover {span} (the acquisition plus 60 s); "
            "use the POEORB/RESORB file of this date or remove it from the orbit folder"
        )
    if np.diff(t).max() > MAX_GAP:
        raise OrbitError(
            f"orbit {orbit.source} has a gap of {np.diff(t).max():.0f} s near the acquisition; "
            "use another POEORB/RESORB file"
        )
    return OrbitStateVectors(
        epoch=orbit.epoch,
        times=t,
        positions=orbit.positions[inside],
        velocities=orbit.velocities[inside],
        source=orbit.source,
    )


def select_orbit(meta: S1Metadata, image: S1Image, orbit_folder: Path | None) -> OrbitStateVectors:
    """The orbit to use for ``image``: a covering file orbit from ``orbit_folder``, else the annotation orbit.

    A file orbit is restricted to samples within a few minutes of the image. Raises
    :class:`ConfigError` when ``orbit_folder`` is not a folder and :class:`OrbitError` when the
    chosen file is malformed or does not cover the image.
    """
    if orbit_folder is None:
        log.info("%s: using the annotation orbit (no orbit folder configured)", meta.product_id)
        return image.orbit
    folder = Path(orbit_folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            "sentinel1.orbit_folder",
            str(orbit_folder),
            "give an existing folder of POEORB/RESORB .EOF files, or leave it empty to use the annotation orbit",
        )
    start = meta.epoch + timedelta(seconds=image.first_line_time)
    stop = meta.epoch + timedelta(seconds=image.last_line_time)
    path = find_orbit_file(folder, meta.mission, start, stop)
    if path is None:
        log.warning(
            "%s: no %s POEORB/RESORB file in %s covers %s to %s; using the annotation orbit",
            meta.product_id,
            meta.mission,
            folder,
            start.isoformat(),
            stop.isoformat(),
        )
        return image.orbit
    orbit = restrict_orbit(read_orbit_file(path, meta.epoch), image.first_line_time, image.last_line_time)
    log.info("%s: using orbit file %s (%d state vectors)", meta.product_id, path.name, orbit.times.size)
    return orbit
