"""XML of synthetic Sentinel-1 GRD products: annotation, calibration, noise and manifest.safe.

Element names, nesting and number formats follow real ESA IW GRDH products (product
specification S1-RS-MDA-52-7441, e.g. ``S1B_IW_GRDH_1SDV_20211223T051122_..._5371.SAFE``). Only
what readers of GRD products use is written: no attitude, replica, raw-data analysis, antenna
pattern or RFI annotation (their lists are present with ``count="0"``). Times are UTC with
microseconds, like ESA's; doubles use 16 significant digits, LUT values 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from lxml import etree

from senprep_core.s1.model import AzimuthNoiseBlock

XFDU = "urn:ccsds:schema:xfdu:1"
SAFE = "http://www.esa.int/safe/sentinel-1.0"
S1 = "http://www.esa.int/safe/sentinel-1.0/sentinel-1"
S1SARL1 = "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1"
GML = "http://www.opengis.net/gml"
_NSMAP = {
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "gml": GML,
    "xfdu": XFDU,
    "safe": SAFE,
    "s1": S1,
    "s1sar": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar",
    "s1sarl1": S1SARL1,
}
_NSSDC = {"S1A": "2014-016A", "S1B": "2016-025A"}


def utc(epoch: datetime, seconds: float) -> str:
    """ISO UTC text (microseconds, no zone) of ``seconds`` after ``epoch``."""
    return (epoch + timedelta(microseconds=round(float(seconds) * 1e6))).strftime("%Y-%m-%dT%H:%M:%S.%f")


def d(value: float) -> str:
    """A double as ESA writes them (16 significant digits)."""
    return f"{float(value):.15e}"


def lut_text(values: np.ndarray) -> str:
    """A LUT vector (7 significant digits, space separated)."""
    return " ".join(f"{float(v):.6e}" for v in values)


def lut_values(values: np.ndarray) -> np.ndarray:
    """The values a reader gets back from :func:`lut_text` (what the simulator must use)."""
    return np.array([float(f"{float(v):.6e}") for v in np.ravel(values)]).reshape(np.shape(values))


def _ints(values: Sequence[int] | np.ndarray) -> str:
    return " ".join(str(int(v)) for v in values)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, {k: v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _tree(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


@dataclass(frozen=True)
class Header:
    """The ``adsHeader`` shared by the annotation, calibration and noise XML of one image."""

    mission: str
    polarisation: str
    start: str  # UTC text
    stop: str
    absolute_orbit: int
    datatake_id: int
    image_number: int
    mode: str = "IW"  # "IW" | "EW" | "SM"
    swath: str = "IW"  # "IW" | "EW" | "S1".."S6"


def _header(root: etree._Element, h: Header) -> None:
    ads = _sub(root, "adsHeader")
    for tag, text in (
        ("missionId", h.mission),
        ("productType", "GRD"),
        ("polarisation", h.polarisation),
        ("mode", h.mode),
        ("swath", h.swath),
        ("startTime", h.start),
        ("stopTime", h.stop),
        ("absoluteOrbitNumber", str(h.absolute_orbit)),
        ("missionDataTakeId", str(h.datatake_id)),
        ("imageNumber", f"{h.image_number:03d}"),
    ):
        _sub(ads, tag, text)


@dataclass(frozen=True)
class AnnotationInfo:
    """Everything the annotation XML of one image holds. Times are seconds since ``epoch``."""

    header: Header
    epoch: datetime
    pass_direction: str  # "ASCENDING" | "DESCENDING"
    platform_heading: float
    radar_frequency: float
    range_sampling_rate: float
    orbit_times: np.ndarray
    orbit_positions: np.ndarray
    orbit_velocities: np.ndarray
    anx_time: float
    lines: int
    samples: int
    azimuth_time_interval: float
    range_spacing: float
    azimuth_spacing: float
    slant_range_time: float
    incidence_mid: float
    # geolocation tie points (flat arrays)
    tie_line: np.ndarray
    tie_pixel: np.ndarray
    tie_time: np.ndarray
    tie_tau: np.ndarray
    tie_lat: np.ndarray
    tie_lon: np.ndarray
    tie_height: np.ndarray
    tie_incidence: np.ndarray
    tie_elevation: np.ndarray
    # coordinate conversion records
    record_times: np.ndarray
    sr0: float
    srgr: np.ndarray
    grsr: np.ndarray
    fm_rate: tuple[float, float, float]
    dn_mean: float
    dn_std: float
    subswaths: tuple[tuple[str, int, int], ...] = ()  # (swath, first, last pixel); empty: IW2 over the image


def annotation(a: AnnotationInfo) -> bytes:
    """The product annotation XML (``annotation/s1a-iw-grd-vv-...xml``)."""
    e = a.epoch
    last = (a.lines - 1) * a.azimuth_time_interval
    root = etree.Element("product")
    _header(root, a.header)
    quality = _sub(root, "qualityInformation")
    _sub(quality, "productQualityIndex", d(0.0))
    _sub(quality, "qualityDataList", count="0")

    general = _sub(root, "generalAnnotation")
    info = _sub(general, "productInformation")
    _sub(info, "pass", a.pass_direction.capitalize())
    _sub(info, "timelinessCategory", "Fast-24h")
    _sub(info, "platformHeading", d(a.platform_heading))
    _sub(info, "projection", "Ground Range")
    _sub(info, "rangeSamplingRate", d(a.range_sampling_rate))
    _sub(info, "radarFrequency", d(a.radar_frequency))
    _sub(info, "azimuthSteeringRate", d(1.590368784))
    _sub(general, "downlinkInformationList", count="0")
    orbits = _sub(general, "orbitList", count=str(len(a.orbit_times)))
    for t, p, v in zip(a.orbit_times, a.orbit_positions, a.orbit_velocities, strict=True):
        orbit = _sub(orbits, "orbit")
        _sub(orbit, "time", utc(e, t))
        _sub(orbit, "frame", "Earth Fixed")
        for name, vec in (("position", p), ("velocity", v)):
            el = _sub(orbit, name)
            for axis, value in zip("xyz", vec, strict=True):
                _sub(el, axis, d(value))
    for name in ("attitudeList", "rawDataAnalysisList", "replicaInformationList", "noiseList"):
        _sub(general, name, count="0")
    heights = _sub(general, "terrainHeightList", count="1")
    th = _sub(heights, "terrainHeight")
    _sub(th, "azimuthTime", utc(e, 0.0))
    _sub(th, "value", d(0.0))  # ground range is defined on the ellipsoid (h = 0)
    fm = _sub(general, "azimuthFmRateList", count="1")
    rate = _sub(fm, "azimuthFmRate")
    _sub(rate, "azimuthTime", utc(e, 0.0))
    _sub(rate, "t0", d(a.slant_range_time))
    _sub(rate, "azimuthFmRatePolynomial", " ".join(f"{c:.6e}" for c in a.fm_rate), count="3")

    image = _sub(root, "imageAnnotation")
    ii = _sub(image, "imageInformation")
    for tag, text in (
        ("productFirstLineUtcTime", utc(e, 0.0)),
        ("productLastLineUtcTime", utc(e, last)),
        ("ascendingNodeTime", utc(e, a.anx_time)),
        ("anchorTime", utc(e, 0.0)),
        ("productComposition", "Individual"),
        ("sliceNumber", "0"),
    ):
        _sub(ii, tag, text)
    _sub(ii, "sliceList", count="0")
    for tag, text in (
        ("slantRangeTime", d(a.slant_range_time)),
        ("pixelValue", "Detected"),
        ("outputPixels", "16 bit Unsigned Integer"),
        ("rangePixelSpacing", f"{a.range_spacing:.6e}"),
        ("azimuthPixelSpacing", f"{a.azimuth_spacing:.6e}"),
        ("azimuthTimeInterval", d(a.azimuth_time_interval)),
        ("azimuthFrequency", d(1.0 / a.azimuth_time_interval)),
        ("numberOfSamples", str(a.samples)),
        ("numberOfLines", str(a.lines)),
        ("zeroDopMinusAcqTime", d(0.0)),
        ("incidenceAngleMidSwath", d(a.incidence_mid)),
    ):
        _sub(ii, tag, text)
    _stats(ii, a.dn_mean, a.dn_std)
    _processing(image, a.azimuth_time_interval, a.header.mode, tuple(s[0] for s in a.subswaths) or ("IW2",))

    doppler = _sub(root, "dopplerCentroid")
    _sub(doppler, "dcEstimateList", count="0")
    pattern = _sub(root, "antennaPattern")
    _sub(pattern, "antennaPatternList", count="0")
    timing = _sub(root, "swathTiming")
    _sub(timing, "linesPerBurst", "0")
    _sub(timing, "samplesPerBurst", "0")
    _sub(timing, "burstList", count="0")

    grid = _sub(_sub(root, "geolocationGrid"), "geolocationGridPointList", count=str(a.tie_line.size))
    for i in range(a.tie_line.size):
        pt = _sub(grid, "geolocationGridPoint")
        _sub(pt, "azimuthTime", utc(e, a.tie_time[i]))
        _sub(pt, "slantRangeTime", d(a.tie_tau[i]))
        _sub(pt, "line", str(int(a.tie_line[i])))
        _sub(pt, "pixel", str(int(a.tie_pixel[i])))
        _sub(pt, "latitude", d(a.tie_lat[i]))
        _sub(pt, "longitude", d(a.tie_lon[i]))
        _sub(pt, "height", d(a.tie_height[i]))
        _sub(pt, "incidenceAngle", d(a.tie_incidence[i]))
        _sub(pt, "elevationAngle", d(a.tie_elevation[i]))

    conv = _sub(_sub(root, "coordinateConversion"), "coordinateConversionList", count=str(a.record_times.size))
    for k, t in enumerate(a.record_times):
        rec = _sub(conv, "coordinateConversion")
        _sub(rec, "azimuthTime", utc(e, t))
        _sub(rec, "slantRangeTime", d(a.slant_range_time))
        _sub(rec, "sr0", d(a.sr0))
        _sub(rec, "srgrCoefficients", " ".join(d(c) for c in a.srgr[k]), count=str(a.srgr.shape[1]))
        _sub(rec, "gr0", d(0.0))
        _sub(rec, "grsrCoefficients", " ".join(d(c) for c in a.grsr[k]), count=str(a.grsr.shape[1]))

    swaths = a.subswaths or (("IW2", 0, a.samples - 1),)
    merge = _sub(_sub(root, "swathMerging"), "swathMergeList", count=str(len(swaths)))
    for swath, first, last_pixel in swaths:
        sm = _sub(merge, "swathMerge")
        _sub(sm, "swath", swath)
        bounds_list = _sub(sm, "swathBoundsList", count="1")
        bounds = _sub(bounds_list, "swathBounds")
        _sub(bounds, "azimuthTime", utc(e, 0.0))
        for tag, value in (
            ("firstAzimuthLine", 0),
            ("firstRangeSample", first),
            ("lastAzimuthLine", a.lines - 1),
            ("lastRangeSample", last_pixel),
        ):
            _sub(bounds, tag, str(value))
    return _tree(root)


def _stats(parent: etree._Element, mean: float, std: float) -> None:
    stats = _sub(parent, "imageStatistics")
    for tag, value in (("outputDataMean", mean), ("outputDataStdDev", std)):
        el = _sub(stats, tag)
        _sub(el, "re", f"{value:.6e}")
        _sub(el, "im", f"{0.0:.6e}")


def _processing(image: etree._Element, ati: float, mode: str, swaths: tuple[str, ...]) -> None:
    proc = _sub(image, "processingInformation")
    for tag, text in (
        ("rawDataAnalysisUsed", "true"),
        ("orbitDataFileUsed", "true"),
        ("attitudeDataFileUsed", "false"),
        ("rxVariationCorrectionApplied", "true"),
        ("antennaElevationPatternApplied", "true"),
        ("antennaAzimuthPatternApplied", "true"),
        ("antennaAzimuthElementPatternApplied", "true"),
        ("dcMethod", "Data Analysis"),
        ("dcInputData", "Range Compressed"),
        ("rangeSpreadingLossCompensationApplied", "true"),
        ("srgrConversionApplied", "true"),
        ("detectionPerformed", "true"),
        ("thermalNoiseCorrectionPerformed", "false"),
        ("rfiMitigationPerformed", "Never"),
        ("chirpSource", "Nominal"),
        ("pgSource", "Extracted"),
        ("rrfSpectrum", "Extended Tapered"),
        ("applicationLutId", f"{mode}_Default"),
    ):
        _sub(proc, tag, text)
    params = _sub(proc, "swathProcParamsList", count=str(len(swaths)))
    for swath in swaths:
        _swath_params(_sub(params, "swathProcParams"), swath)
    for tag, text in (
        ("referenceRange", d(8.0e5)),
        ("ellipsoidName", "WGS84"),
        ("ellipsoidSemiMajorAxis", d(6378137.0)),
        ("ellipsoidSemiMinorAxis", d(6356752.314245)),
        ("bistaticDelayCorrectionApplied", "true"),
        ("topsFilterConvention", "Only Echo Lines"),
        ("orbitSource", "Auxiliary"),
        ("attitudeSource", "Downlink"),
    ):
        _sub(proc, tag, text)


def _swath_params(sp: etree._Element, swath: str) -> None:
    _sub(sp, "swath", swath)
    for name, bandwidth, looks in (("rangeProcessing", 4.28e7, 5), ("azimuthProcessing", 3.13e2, 1)):
        el = _sub(sp, name)
        _sub(el, "windowType", "Hamming")
        _sub(el, "windowCoefficient", d(0.75))
        _sub(el, "totalBandwidth", d(bandwidth))
        _sub(el, "processingBandwidth", d(bandwidth))
        _sub(el, "lookBandwidth", d(bandwidth / looks))
        _sub(el, "numberOfLooks", str(looks))
        _sub(el, "lookOverlap", d(0.0))
    _sub(sp, "processorScalingFactor", f"{1.0:.6e}")


@dataclass(frozen=True)
class LutVectors:
    """Sparse vectors: ``lines`` (m,), ``pixels`` (n,) shared by every vector, ``values`` name -> (m, n)."""

    lines: np.ndarray
    pixels: np.ndarray
    values: dict[str, np.ndarray]


def calibration(header: Header, epoch: datetime, ati: float, luts: LutVectors) -> bytes:
    """The calibration XML: sigmaNought, betaNought, gamma and dn vectors."""
    root = etree.Element("calibration")
    _header(root, header)
    info = _sub(root, "calibrationInformation")
    _sub(info, "absoluteCalibrationConstant", f"{1.0:.6e}")
    vectors = _sub(root, "calibrationVectorList", count=str(luts.lines.size))
    n = str(luts.pixels.size)
    for i, line in enumerate(luts.lines):
        vec = _sub(vectors, "calibrationVector")
        _sub(vec, "azimuthTime", utc(epoch, line * ati))
        _sub(vec, "line", str(int(line)))
        _sub(vec, "pixel", _ints(luts.pixels), count=n)
        for tag in ("sigmaNought", "betaNought", "gamma", "dn"):
            _sub(vec, tag, lut_text(luts.values[tag][i]), count=n)
    return _tree(root)


def noise(
    header: Header, epoch: datetime, ati: float, ranges: LutVectors, blocks: Sequence[AzimuthNoiseBlock], ipf: float
) -> bytes:
    """The noise XML: ``noiseRangeVectorList`` + ``noiseAzimuthVectorList`` (IPF >= 2.90), else the
    older ``noiseVectorList`` / ``noiseLut`` layout (range only)."""
    root = etree.Element("noise")
    _header(root, header)
    new = ipf >= 2.90
    vectors = _sub(root, "noiseRangeVectorList" if new else "noiseVectorList", count=str(ranges.lines.size))
    n = str(ranges.pixels.size)
    for i, line in enumerate(ranges.lines):
        vec = _sub(vectors, "noiseRangeVector" if new else "noiseVector")
        _sub(vec, "azimuthTime", utc(epoch, line * ati))
        _sub(vec, "line", str(int(line)))
        _sub(vec, "pixel", _ints(ranges.pixels), count=n)
        _sub(vec, "noiseRangeLut" if new else "noiseLut", lut_text(ranges.values["noise"][i]), count=n)
    if new:
        az = _sub(root, "noiseAzimuthVectorList", count=str(len(blocks)))
        for b in blocks:
            vec = _sub(az, "noiseAzimuthVector")
            _sub(vec, "swath", b.swath)
            _sub(vec, "firstAzimuthLine", str(b.first_line))
            _sub(vec, "firstRangeSample", str(b.first_pixel))
            _sub(vec, "lastAzimuthLine", str(b.last_line))
            _sub(vec, "lastRangeSample", str(b.last_pixel))
            _sub(vec, "line", _ints(b.lines), count=str(b.lines.size))
            _sub(vec, "noiseAzimuthLut", lut_text(b.values), count=str(b.values.size))
    return _tree(root)


@dataclass(frozen=True)
class ManifestInfo:
    """What ``manifest.safe`` says about the product; ``files`` are (href, repID, object id, size, md5)."""

    mission: str
    polarisations: tuple[str, ...]
    pass_direction: str
    absolute_orbit: int
    relative_orbit: int
    datatake_id: int
    start: str
    stop: str
    anx_time: str
    processing_start: str
    processing_stop: str
    ipf_version: str
    footprint_latlon: tuple[tuple[float, float], ...]  # 4 corners (lat, lon)
    files: tuple[tuple[str, str, str, int, str], ...]
    mode: str = "IW"  # instrument mode: "IW" | "EW" | "SM"
    swath: str = "IW"  # "IW" | "EW" | "S1".."S6"


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _wrap(section: etree._Element, object_id: str, text_info: str) -> etree._Element:
    obj = _sub(section, "metadataObject", ID=object_id, classification="DESCRIPTION", category="DMD")
    wrap = _sub(obj, "metadataWrap", mimeType="text/xml", vocabularyName="SAFE", textInfo=text_info)
    return _sub(wrap, "xmlData")


def manifest(m: ManifestInfo) -> bytes:
    """The ``manifest.safe`` (XFDU) of the product."""
    root = etree.Element(
        _q(XFDU, "XFDU"),
        nsmap=_NSMAP,
        version=f"esa/safe/sentinel-1.0/sentinel-1/sar/level-1/grd/standard/{m.mode.lower()}dp",
    )
    package = _sub(root, "informationPackageMap")
    top = _sub(
        package,
        _q(XFDU, "contentUnit"),
        unitType="SAFE Archive Information Package",
        textInfo=f"Sentinel-1 {m.mode} Level-1 GRD Product",
        dmdID="acquisitionPeriod platform generalProductInformation measurementOrbitReference measurementFrameSet",
        pdiID="processing",
    )
    for _href, rep, oid, _size, _md5 in m.files:
        unit_type = "Measurement Data Unit" if rep == "s1Level1MeasurementSchema" else "Metadata Unit"
        unit = _sub(top, _q(XFDU, "contentUnit"), unitType=unit_type, repID=rep)
        _sub(unit, "dataObjectPointer", dataObjectID=oid)

    section = _sub(root, "metadataSection")
    proc_obj = _sub(section, "metadataObject", ID="processing", classification="PROVENANCE", category="PDI")
    proc_wrap = _sub(proc_obj, "metadataWrap", mimeType="text/xml", vocabularyName="SAFE", textInfo="Processing")
    processing = _sub(
        _sub(proc_wrap, "xmlData"),
        _q(SAFE, "processing"),
        name="GRD Post Processing",
        start=m.processing_start,
        stop=m.processing_stop,
    )
    facility = _sub(
        processing,
        _q(SAFE, "facility"),
        country="Nowhere",
        name="senprep demo simulator",
        organisation="senprep",
        site="synthetic",
    )
    _sub(facility, _q(SAFE, "software"), name="Sentinel-1 IPF", version=m.ipf_version)

    platform = _sub(_wrap(section, "platform", "Platform Description"), _q(SAFE, "platform"))
    _sub(platform, _q(SAFE, "nssdcIdentifier"), _NSSDC.get(m.mission, "2014-016A"))
    _sub(platform, _q(SAFE, "familyName"), "SENTINEL-1")
    _sub(platform, _q(SAFE, "number"), m.mission[-1])
    instrument = _sub(platform, _q(SAFE, "instrument"))
    _sub(instrument, _q(SAFE, "familyName"), "Synthetic Aperture Radar", abbreviation="SAR")
    mode = _sub(_sub(instrument, _q(SAFE, "extension")), _q(S1SARL1, "instrumentMode"))
    _sub(mode, _q(S1SARL1, "mode"), m.mode)
    _sub(mode, _q(S1SARL1, "swath"), m.swath)

    ref = _sub(_wrap(section, "measurementOrbitReference", "Orbit Reference"), _q(SAFE, "orbitReference"))
    for kind in ("start", "stop"):
        _sub(ref, _q(SAFE, "orbitNumber"), str(m.absolute_orbit), type=kind)
    for kind in ("start", "stop"):
        _sub(ref, _q(SAFE, "relativeOrbitNumber"), str(m.relative_orbit), type=kind)
    _sub(ref, _q(SAFE, "cycleNumber"), str(m.absolute_orbit // 175 + 1))
    _sub(ref, _q(SAFE, "phaseIdentifier"), "1")
    props = _sub(_sub(ref, _q(SAFE, "extension")), _q(S1, "orbitProperties"))
    _sub(props, _q(S1, "pass"), m.pass_direction)
    _sub(props, _q(S1, "ascendingNodeTime"), m.anx_time)

    general = _sub(
        _wrap(section, "generalProductInformation", "General Product Information"),
        _q(S1SARL1, "standAloneProductInformation"),
    )
    _sub(general, _q(S1SARL1, "instrumentConfigurationID"), "7")
    _sub(general, _q(S1SARL1, "missionDataTakeID"), str(m.datatake_id))
    for pol in m.polarisations:
        _sub(general, _q(S1SARL1, "transmitterReceiverPolarisation"), pol)
    for tag, text in (
        ("productClass", "S"),
        ("productClassDescription", "SAR Standard L1 Product"),
        ("productComposition", "Individual"),
        ("productType", "GRD"),
        ("productTimelinessCategory", "Fast-24h"),
        ("sliceProductFlag", "false"),
    ):
        _sub(general, _q(S1SARL1, tag), text)

    period = _sub(_wrap(section, "acquisitionPeriod", "Acquisition Period"), _q(SAFE, "acquisitionPeriod"))
    _sub(period, _q(SAFE, "startTime"), m.start)
    _sub(period, _q(SAFE, "stopTime"), m.stop)

    frame = _sub(_sub(_wrap(section, "measurementFrameSet", "Frame Set"), _q(SAFE, "frameSet")), _q(SAFE, "frame"))
    foot = _sub(frame, _q(SAFE, "footPrint"), srsName="http://www.opengis.net/gml/srs/epsg.xml#4326")
    _sub(foot, _q(GML, "coordinates"), " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in m.footprint_latlon))

    objects = _sub(root, "dataObjectSection")
    for href, rep, oid, size, md5 in m.files:
        obj = _sub(objects, "dataObject", ID=oid, repID=rep)
        mime = "application/octet-stream" if rep == "s1Level1MeasurementSchema" else "text/xml"
        stream = _sub(obj, "byteStream", mimeType=mime, size=str(size))
        _sub(stream, "fileLocation", locatorType="URL", href=f"./{href}")
        _sub(stream, "checksum", md5, checksumName="MD5")
    return _tree(root)
