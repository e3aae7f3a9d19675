"""Parse Sentinel-1 GRD annotation, calibration and noise XML into the model's value objects.

Each XML is parsed once (lxml, no entity expansion) and read with plain XPath; vectors are parsed
with numpy. Times become float64 seconds since the product epoch. Both noise layouts are read:
``noiseRangeVectorList`` + ``noiseAzimuthVectorList`` (IPF >= 2.90) and the older
``noiseVectorList`` (range only). Vectors may differ in length from line to line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from lxml import etree

from senprep_core.errors import MetadataError
from senprep_core.s1.model import (
    AzimuthNoiseBlock,
    Calibration,
    CoordinateConversion,
    GeolocationGrid,
    Noise,
    OrbitStateVectors,
    SparseLUT,
)

log = logging.getLogger(__name__)

_DAMAGED = "the product is damaged or incomplete: download it again"

# calibration LUT names in the XML -> names in Calibration.luts
CALIBRATION_LUTS = {"sigmaNought": "sigma0", "betaNought": "beta0", "gamma": "gamma0", "dn": "dn"}


# ----- small XML / time helpers (shared with manifest.py and orbit_files.py) -------------------


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def first_text(elem: etree._Element, name: str) -> str | None:
    """The stripped text of the first direct child with local name ``name``, or None."""
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def child_texts(elem: etree._Element, name: str) -> list[str]:
    """The stripped texts of every direct child with local name ``name``."""
    return [(c.text or "").strip() for c in elem if _local(c.tag) == name]


def parse_utc(text: str, label: str) -> datetime:
    """A UTC-aware datetime from an ISO time as written in S1 XML (``"UTC="`` prefix and ``Z`` allowed)."""
    value = text.strip().removeprefix("UTC=").removesuffix("Z")
    if "." in value:  # Python parses at most 6 fractional digits
        head, frac = value.split(".", 1)
        value = f"{head}.{frac[:6]}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MetadataError(f"{label}: {text!r} is not an ISO UTC time; {_DAMAGED}") from exc
    if parsed.tzinfo is not None:
        return parsed.astimezone(timezone.utc)
    return parsed.replace(tzinfo=timezone.utc)


def seconds_since(texts: Sequence[str], epoch: datetime, label: str) -> np.ndarray:
    """Float64 seconds since ``epoch`` of ISO UTC time strings (nanosecond arithmetic, no rounding drift)."""
    cleaned = [t.strip().removeprefix("UTC=").removesuffix("Z") for t in texts]
    try:
        times = np.array(cleaned, dtype="datetime64[ns]")
    except ValueError as exc:
        raise MetadataError(f"{label}: a time value is not an ISO UTC time ({exc}); {_DAMAGED}") from exc
    origin = np.datetime64(epoch.astimezone(timezone.utc).replace(tzinfo=None), "ns")
    return (times - origin).astype(np.int64).astype(np.float64) / 1e9


def _texts(root: etree._Element, path: str, label: str, expected: int | None = None) -> list[str]:
    values = root.xpath(f"{path}/text()")
    if not isinstance(values, list):  # pragma: no cover - xpath text() always gives a list
        raise MetadataError(f"{label}: cannot read {path}; {_DAMAGED}")
    out = [str(v).strip() for v in values]
    if expected is not None and len(out) != expected:
        raise MetadataError(f"{label}: {path} has {len(out)} values for {expected} entries; {_DAMAGED}")
    return out


def _text(root: etree._Element, path: str, label: str) -> str:
    value = root.findtext(path)
    if value is None or not value.strip():
        raise MetadataError(f"{label} has no {path}; {_DAMAGED}")
    return value.strip()


def _float(root: etree._Element, path: str, label: str) -> float:
    text = _text(root, path, label)
    try:
        return float(text)
    except ValueError as exc:
        raise MetadataError(f"{label}: {path} = {text!r} is not a number; {_DAMAGED}") from exc


def _int(root: etree._Element, path: str, label: str) -> int:
    text = _text(root, path, label)
    try:
        return int(text)
    except ValueError as exc:
        raise MetadataError(f"{label}: {path} = {text!r} is not an integer; {_DAMAGED}") from exc


def _numbers(texts: Sequence[str], label: str, what: str, dtype: type = np.float64) -> np.ndarray:
    try:
        return np.array(texts, dtype=np.float64).astype(dtype, copy=False)
    except ValueError as exc:
        raise MetadataError(f"{label}: {what} holds a value that is not a number ({exc}); {_DAMAGED}") from exc


def _vector(text: str | None, label: str, what: str, dtype: type = np.float64) -> np.ndarray:
    """A whitespace-separated list of numbers (a ``count="n"`` vector element)."""
    return _numbers((text or "").split(), label, what, dtype)


# ----- annotation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotationHeader:
    """The ``adsHeader`` of an annotation XML and its first line time (used to pick the epoch)."""

    polarisation: str
    swath: str
    product_type: str
    image_number: int
    first_line_time: datetime


@dataclass(frozen=True)
class ImageAnnotation:
    """The values of one annotation XML that go into :class:`~senprep_core.s1.model.S1Image`."""

    polarisation: str
    swath: str
    lines: int
    samples: int
    first_line_time: float
    last_line_time: float
    azimuth_time_interval: float
    range_pixel_spacing: float
    azimuth_pixel_spacing: float
    slant_range_time: float
    radar_frequency: float
    range_sampling_rate: float
    incidence_angle_mid: float
    bistatic_delay_applied: bool
    pass_direction: str
    orbit: OrbitStateVectors
    geolocation: GeolocationGrid
    conversion: CoordinateConversion


def parse_annotation_header(root: etree._Element, label: str) -> AnnotationHeader:
    """The polarisation, swath, product type, image number and first line time of an annotation."""
    number = (root.findtext("adsHeader/imageNumber") or "1").strip()
    return AnnotationHeader(
        polarisation=_text(root, "adsHeader/polarisation", label).upper(),
        swath=_text(root, "adsHeader/swath", label).upper(),
        product_type=_text(root, "adsHeader/productType", label).upper(),
        image_number=int(number) if number.isdigit() else 1,
        first_line_time=parse_utc(
            _text(root, "imageAnnotation/imageInformation/productFirstLineUtcTime", label), label
        ),
    )


def parse_orbit(root: etree._Element, epoch: datetime, label: str) -> OrbitStateVectors:
    """The annotation's orbit state vectors (Earth-fixed), times in seconds since ``epoch``."""
    base = "generalAnnotation/orbitList/orbit"
    times = _texts(root, f"{base}/time", label)
    n = len(times)
    if n == 0:
        raise MetadataError(f"{label} has no orbit state vectors (generalAnnotation/orbitList); {_DAMAGED}")
    frames = {f.lower() for f in _texts(root, f"{base}/frame", label)}
    if frames - {"earth fixed"}:
        raise MetadataError(f"{label}: orbit frame {sorted(frames)} is not 'Earth Fixed'; senprep needs ECEF vectors")
    pos = [_numbers(_texts(root, f"{base}/position/{a}", label, n), label, "orbit position") for a in "xyz"]
    vel = [_numbers(_texts(root, f"{base}/velocity/{a}", label, n), label, "orbit velocity") for a in "xyz"]
    t = seconds_since(times, epoch, label)
    order = np.argsort(t, kind="stable")
    return OrbitStateVectors(
        epoch=epoch,
        times=t[order],
        positions=np.column_stack(pos)[order],
        velocities=np.column_stack(vel)[order],
        source="annotation",
    )


def parse_geolocation(root: etree._Element, epoch: datetime, label: str) -> GeolocationGrid:
    """The geolocation tie points as flat arrays (times since ``epoch``)."""
    base = "geolocationGrid/geolocationGridPointList/geolocationGridPoint"
    times = _texts(root, f"{base}/azimuthTime", label)
    n = len(times)
    if n == 0:
        raise MetadataError(f"{label} has no geolocation grid points; {_DAMAGED}")

    def col(name: str, dtype: type = np.float64) -> np.ndarray:
        return _numbers(_texts(root, f"{base}/{name}", label, n), label, f"geolocation {name}", dtype)

    return GeolocationGrid(
        line=col("line", np.int64),
        pixel=col("pixel", np.int64),
        azimuth_time=seconds_since(times, epoch, label),
        slant_range_time=col("slantRangeTime"),
        latitude=col("latitude"),
        longitude=col("longitude"),
        height=col("height"),
        incidence_angle=col("incidenceAngle"),
        elevation_angle=col("elevationAngle"),
    )


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    """Stack coefficient vectors of possibly different lengths, padding with zeros."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def parse_conversion(root: etree._Element, epoch: datetime, label: str) -> CoordinateConversion:
    """The slant/ground range conversion records (GRD ``coordinateConversionList``)."""
    records = root.findall("coordinateConversion/coordinateConversionList/coordinateConversion")
    if not records:
        raise MetadataError(
            f"{label} has no coordinateConversionList records; ground-range products need them ({_DAMAGED})"
        )
    times, srt, sr0, gr0, srgr, grsr = [], [], [], [], [], []
    for rec in records:
        times.append(_text(rec, "azimuthTime", label))
        srt.append(_float(rec, "slantRangeTime", label))
        sr0.append(_float(rec, "sr0", label))
        gr0.append(_float(rec, "gr0", label))
        srgr.append(_vector(rec.findtext("srgrCoefficients"), label, "srgrCoefficients"))
        grsr.append(_vector(rec.findtext("grsrCoefficients"), label, "grsrCoefficients"))
    if any(len(c) == 0 for c in srgr + grsr):
        raise MetadataError(f"{label}: a coordinateConversion record has no polynomial coefficients; {_DAMAGED}")
    return CoordinateConversion(
        azimuth_time=seconds_since(times, epoch, label),
        slant_range_time=np.array(srt),
        sr0=np.array(sr0),
        srgr=_padded(srgr),
        gr0=np.array(gr0),
        grsr=_padded(grsr),
    )


def _bool(text: str | None) -> bool | None:
    if text is None or not text.strip():
        return None
    return text.strip().lower() in ("true", "1")


def parse_image_annotation(root: etree._Element, epoch: datetime, label: str) -> ImageAnnotation:
    """Everything the chain needs from one annotation XML (GRD), times in seconds since ``epoch``."""
    info = "imageAnnotation/imageInformation"
    proc = "imageAnnotation/processingInformation"
    product = "generalAnnotation/productInformation"
    bistatic = _bool(root.findtext(f"{proc}/bistaticDelayCorrectionApplied"))
    if bistatic is None:
        log.info("%s does not say whether the bistatic delay was corrected (old IPF); assuming it was not", label)
    pass_direction = _text(root, f"{product}/pass", label).upper()
    if pass_direction not in ("ASCENDING", "DESCENDING"):
        raise MetadataError(f"{label}: pass {pass_direction!r} is neither Ascending nor Descending; {_DAMAGED}")
    first, last = seconds_since(
        [_text(root, f"{info}/productFirstLineUtcTime", label), _text(root, f"{info}/productLastLineUtcTime", label)],
        epoch,
        label,
    )
    return ImageAnnotation(
        polarisation=_text(root, "adsHeader/polarisation", label).upper(),
        swath=_text(root, "adsHeader/swath", label).upper(),
        lines=_int(root, f"{info}/numberOfLines", label),
        samples=_int(root, f"{info}/numberOfSamples", label),
        first_line_time=float(first),
        last_line_time=float(last),
        azimuth_time_interval=_float(root, f"{info}/azimuthTimeInterval", label),
        range_pixel_spacing=_float(root, f"{info}/rangePixelSpacing", label),
        azimuth_pixel_spacing=_float(root, f"{info}/azimuthPixelSpacing", label),
        slant_range_time=_float(root, f"{info}/slantRangeTime", label),
        radar_frequency=_float(root, f"{product}/radarFrequency", label),
        range_sampling_rate=_float(root, f"{product}/rangeSamplingRate", label),
        incidence_angle_mid=_float(root, f"{info}/incidenceAngleMidSwath", label),
        bistatic_delay_applied=bool(bistatic),
        pass_direction=pass_direction,
        orbit=parse_orbit(root, epoch, label),
        geolocation=parse_geolocation(root, epoch, label),
        conversion=parse_conversion(root, epoch, label),
    )


# ----- calibration and noise ----------------------------------------------------------------------


def _sparse_lut(vectors: list[etree._Element], value_tag: str, label: str) -> SparseLUT:
    """A SparseLUT from vector elements holding ``line``, ``pixel`` and ``value_tag`` (empty vectors dropped)."""
    lines: list[int] = []
    pixels: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for vec in vectors:
        line = _int(vec, "line", label)
        pix = _vector(vec.findtext("pixel"), label, "pixel", np.int64)
        val = _vector(vec.findtext(value_tag), label, value_tag)
        if pix.size != val.size:
            raise MetadataError(
                f"{label}: the {value_tag} vector of line {line} has {val.size} values "
                f"for {pix.size} pixels; {_DAMAGED}"
            )
        if pix.size == 0:
            log.debug("%s: the %s vector of line %d is empty; skipped", label, value_tag, line)
            continue
        lines.append(line)
        pixels.append(pix)
        values.append(val)
    if not lines:
        raise MetadataError(f"{label} has no {value_tag} vectors; {_DAMAGED}")
    order = np.argsort(np.array(lines), kind="stable")
    return SparseLUT(
        lines=np.array(lines, dtype=np.int64)[order],
        pixels=tuple(pixels[i] for i in order),
        values=tuple(values[i] for i in order),
    )


def parse_calibration(root: etree._Element, label: str) -> Calibration:
    """The sigma0/beta0/gamma0/dn LUTs and the absolute calibration constant of a calibration XML."""
    vectors = root.findall("calibrationVectorList/calibrationVector")
    if not vectors:
        raise MetadataError(f"{label} has no calibrationVectorList/calibrationVector; {_DAMAGED}")
    luts = {name: _sparse_lut(vectors, tag, label) for tag, name in CALIBRATION_LUTS.items()}
    constant = root.findtext("calibrationInformation/absoluteCalibrationConstant")
    return Calibration(
        luts=luts,
        absolute_calibration_constant=float(constant) if constant and constant.strip() else 1.0,
    )


def _azimuth_block(vec: etree._Element, label: str) -> AzimuthNoiseBlock:
    lines = _vector(vec.findtext("line"), label, "noise azimuth line", np.int64)
    values = _vector(vec.findtext("noiseAzimuthLut"), label, "noiseAzimuthLut")
    if lines.size != values.size or lines.size == 0:
        raise MetadataError(
            f"{label}: a noiseAzimuthVector has {values.size} LUT values for {lines.size} lines; {_DAMAGED}"
        )
    block = AzimuthNoiseBlock(
        first_line=_int(vec, "firstAzimuthLine", label),
        last_line=_int(vec, "lastAzimuthLine", label),
        first_pixel=_int(vec, "firstRangeSample", label),
        last_pixel=_int(vec, "lastRangeSample", label),
        lines=lines,
        values=values,
        swath=(vec.findtext("swath") or "").strip().upper(),
    )
    if block.last_line < block.first_line or block.last_pixel < block.first_pixel:
        raise MetadataError(f"{label}: a noiseAzimuthVector has inverted line/pixel bounds; {_DAMAGED}")
    return block


def parse_noise(root: etree._Element, label: str) -> Noise:
    """Range noise vectors (new or pre-IPF-2.90 layout) and azimuth noise blocks of a noise XML."""
    vectors = root.findall("noiseRangeVectorList/noiseRangeVector")
    if vectors:
        range_lut = _sparse_lut(vectors, "noiseRangeLut", label)
    else:
        old = root.findall("noiseVectorList/noiseVector")
        if not old:
            raise MetadataError(f"{label} has neither noiseRangeVectorList nor noiseVectorList; {_DAMAGED}")
        range_lut = _sparse_lut(old, "noiseLut", label)
    blocks = tuple(_azimuth_block(v, label) for v in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"))
    return Noise(range=range_lut, azimuth=blocks)
