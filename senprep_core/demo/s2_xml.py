"""XML of synthetic Sentinel-2 products: MTD_MSIL1C/MTD_MSIL2A, MTD_TL, manifest.safe, MSK_CLOUDS_B00.gml.

Element names, namespaces and nesting follow real ESA products (PSD 14, SAFE_COMPACT), e.g.
``S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE``; only the elements a reader
of the product needs are written (no GIPP list). MTD_TL holds the sun angle grid and the viewing angle
grids of every band and detector of :mod:`senprep_core.demo.s2_angles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from lxml import etree

from senprep_core.demo.s2_angles import DemoAngles

PSD = "https://psd-14.sentinel2.eo.esa.int/PSD/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XFDU = "urn:ccsds:schema:xfdu:1"
SAFE_NS = "http://www.esa.int/safe/sentinel/1.1"
GML_SAFE = "http://www.opengis.net/gml"
EOP = "http://www.opengis.net/eop/2.0"
GML32 = "http://www.opengis.net/gml/3.2"

#: ESA physical band table: name, bandId, physicalBand, resolution, min, max, central wavelength, E0.
BAND_TABLE: tuple[tuple[str, int, str, int, float, float, float, float], ...] = (
    ("B01", 0, "B1", 60, 412, 456, 442.7, 1884.69),
    ("B02", 1, "B2", 10, 456, 533, 492.7, 1959.66),
    ("B03", 2, "B3", 10, 538, 583, 559.8, 1823.24),
    ("B04", 3, "B4", 10, 646, 684, 664.6, 1512.06),
    ("B05", 4, "B5", 20, 695, 714, 704.1, 1424.64),
    ("B06", 5, "B6", 20, 731, 749, 740.5, 1287.61),
    ("B07", 6, "B7", 20, 769, 797, 782.8, 1162.08),
    ("B08", 7, "B8", 10, 760, 907, 832.8, 1041.63),
    ("B8A", 8, "B8A", 20, 837, 881, 864.7, 955.32),
    ("B09", 9, "B9", 60, 932, 958, 945.1, 812.92),
    ("B10", 10, "B10", 60, 1337, 1412, 1373.5, 367.15),
    ("B11", 11, "B11", 20, 1539, 1682, 1613.7, 245.59),
    ("B12", 12, "B12", 20, 2078, 2320, 2202.4, 85.25),
)

_SCL_TEXT = (
    "SC_NODATA", "SC_SATURATED_DEFECTIVE", "SC_DARK_FEATURE_SHADOW", "SC_CLOUD_SHADOW", "SC_VEGETATION",
    "SC_NOT_VEGETATED", "SC_WATER", "SC_UNCLASSIFIED", "SC_CLOUD_MEDIUM_PROBA", "SC_CLOUD_HIGH_PROBA",
    "SC_THIN_CIRRUS", "SC_SNOW_ICE",
)  # fmt: skip

_PERCENT_NAMES = (
    (1, "SATURATED_DEFECTIVE_PIXEL_PERCENTAGE"), (2, "DARK_FEATURES_PERCENTAGE"), (3, "CLOUD_SHADOW_PERCENTAGE"),
    (4, "VEGETATION_PERCENTAGE"), (5, "NOT_VEGETATED_PERCENTAGE"), (6, "WATER_PERCENTAGE"),
    (7, "UNCLASSIFIED_PERCENTAGE"), (8, "MEDIUM_PROBA_CLOUDS_PERCENTAGE"), (9, "HIGH_PROBA_CLOUDS_PERCENTAGE"),
    (10, "THIN_CIRRUS_PERCENTAGE"), (11, "SNOW_ICE_PERCENTAGE"),
)  # fmt: skip


@dataclass(frozen=True)
class ProductInfo:
    """Everything the XML writers need to know of one product (paths are relative to the .SAFE)."""

    product_id: str
    level: str  # "L1C" | "L2A"
    baseline: str
    mission: str
    sensing_time: datetime
    generation_time: datetime
    relative_orbit: int
    absolute_orbit: int
    tile_id: str
    epsg: int
    ulx: float
    uly: float
    size_10m: int
    granule_dir: str  # e.g. GRANULE/L2A_T30UVG_A012345_20220420T113315
    tile_identifier: str
    datastrip_identifier: str
    image_files: tuple[str, ...]  # relative paths without the .jp2 extension
    qi_files: tuple[tuple[str, str], ...]  # (mask type, relative path)
    footprint_lonlat: tuple[tuple[float, float], ...]  # closed ring of (lon, lat)
    offset: int  # BOA/RADIO add offset (0 before baseline 04.00)
    cloud_percentage: float
    nodata_percentage: float
    class_percentages: dict[int, float] = field(default_factory=dict)
    angles: DemoAngles | None = None  # the Tile_Angles grids; None: constant sun angles, no viewing grids


def _t(dt: datetime, micro: bool = False) -> str:
    if micro:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _sub(parent: etree._Element, tag: str, text: object = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=False, pretty_print=True)


def _spacecraft(mission: str) -> str:
    return f"Sentinel-{mission[1:]}"


def _pos_list(info: ProductInfo) -> str:
    return " ".join(f"{lat!r} {lon!r}" for lon, lat in info.footprint_lonlat) + " "


def _baseline_tag(info: ProductInfo) -> str:
    return f"N{info.baseline}"


def _psd_root(ns: str, tag: str) -> etree._Element:
    """The root element of an ESA PSD metadata file: namespaced tag and schema location."""
    root = etree.Element(f"{{{ns}}}{tag}", nsmap={"n1": ns, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", ns)
    return root


def product_metadata(info: ProductInfo) -> bytes:
    """MTD_MSIL2A.xml or MTD_MSIL1C.xml."""
    l2a = info.level == "L2A"
    kind = "Level-2A" if l2a else "Level-1C"
    ns = f"{PSD}User_Product_{kind}.xsd"
    root = _psd_root(ns, f"{kind}_User_Product")
    general = _sub(root, f"{{{ns}}}General_Info")
    pinfo = _sub(general, "Product_Info")
    _sub(pinfo, "PRODUCT_START_TIME", _t(info.sensing_time))
    _sub(pinfo, "PRODUCT_STOP_TIME", _t(info.sensing_time))
    _sub(pinfo, "PRODUCT_URI", info.product_id + ".SAFE")
    _sub(pinfo, "PROCESSING_LEVEL", kind)
    _sub(pinfo, "PRODUCT_TYPE", "S2MSI2A" if l2a else "S2MSI1C")
    _sub(pinfo, "PROCESSING_BASELINE", info.baseline)
    if info.baseline >= "04.00":
        _sub(
            pinfo,
            "PRODUCT_DOI",
            "https://doi.org/10.5270/S2_-znk9xsj" if l2a else "https://doi.org/10.5270/S2_-742ikth",
        )
    _sub(pinfo, "GENERATION_TIME", _t(info.generation_time, micro=True))
    _sub(pinfo, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(pinfo, "PREVIEW_GEO_INFO", "Not applicable")
    dt_id = f"G{info.mission}_{info.sensing_time:%Y%m%dT%H%M%S}_{info.absolute_orbit:06d}_{_baseline_tag(info)}"
    datatake = _sub(pinfo, "Datatake", datatakeIdentifier=dt_id)
    _sub(datatake, "SPACECRAFT_NAME", _spacecraft(info.mission))
    _sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    _sub(datatake, "DATATAKE_SENSING_START", _t(info.sensing_time))
    _sub(datatake, "SENSING_ORBIT_NUMBER", info.relative_orbit)
    _sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    query = _sub(pinfo, "Query_Options", completeSingleTile="true")
    _sub(query, "PRODUCT_FORMAT", "SAFE_COMPACT")
    organisation = _sub(pinfo, "Product_Organisation")
    granules = _sub(organisation, "Granule_List")
    granule = _sub(
        granules,
        "Granule",
        datastripIdentifier=info.datastrip_identifier,
        granuleIdentifier=info.tile_identifier,
        imageFormat="JPEG2000",
    )
    for path in info.image_files:
        _sub(granule, "IMAGE_FILE", path)

    chars = _sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = _sub(chars, "Special_Values")
        _sub(special, "SPECIAL_VALUE_TEXT", text)
        _sub(special, "SPECIAL_VALUE_INDEX", index)
    order = _sub(chars, "Image_Display_Order")
    for name, value in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        _sub(order, name, value)
    if l2a:
        qlist = _sub(chars, "QUANTIFICATION_VALUES_LIST")
        _sub(qlist, "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
        _sub(qlist, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
        _sub(qlist, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
        if info.baseline >= "04.00":
            offsets = _sub(chars, "BOA_ADD_OFFSET_VALUES_LIST")
            for _name, band_id, *_rest in BAND_TABLE:
                _sub(offsets, "BOA_ADD_OFFSET", info.offset, band_id=str(band_id))
    else:
        _sub(chars, "QUANTIFICATION_VALUE", 10000, unit="none")
        if info.baseline >= "04.00":
            offsets = _sub(chars, "Radiometric_Offset_List")
            for _name, band_id, *_rest in BAND_TABLE:
                _sub(offsets, "RADIO_ADD_OFFSET", info.offset, band_id=str(band_id))
    conversion = _sub(chars, "Reflectance_Conversion")
    _sub(conversion, "U", "0.9994")
    irradiance = _sub(conversion, "Solar_Irradiance_List")
    for _name, band_id, _phys, _res, _lo, _hi, _c, e0 in BAND_TABLE:
        _sub(irradiance, "SOLAR_IRRADIANCE", e0, bandId=str(band_id), unit="W/m²/µm")
    spectral = _sub(chars, "Spectral_Information_List")
    for _name, band_id, phys, res, lo, hi, central, _e0 in BAND_TABLE:
        info_el = _sub(spectral, "Spectral_Information", bandId=str(band_id), physicalBand=phys)
        _sub(info_el, "RESOLUTION", res)
        wave = _sub(info_el, "Wavelength")
        _sub(wave, "MIN", int(lo), unit="nm")
        _sub(wave, "MAX", int(hi), unit="nm")
        _sub(wave, "CENTRAL", central, unit="nm")
        response = _sub(info_el, "Spectral_Response")
        _sub(response, "STEP", 1, unit="nm")
        _sub(response, "VALUES", " ".join(["1"] * (int(hi) - int(lo) + 1)))
    for _name, band_id, *_rest in BAND_TABLE:
        _sub(chars, "PHYSICAL_GAINS", "4.0", bandId=str(band_id))
    _sub(chars, "REFERENCE_BAND", 3)
    if l2a:
        scl_list = _sub(chars, "Scene_Classification_List")
        for index, text in enumerate(_SCL_TEXT):
            item = _sub(scl_list, "Scene_Classification_ID")
            _sub(item, "SCENE_CLASSIFICATION_TEXT", text)
            _sub(item, "SCENE_CLASSIFICATION_INDEX", index)

    geometric = _sub(root, f"{{{ns}}}Geometric_Info")
    outer = _sub(geometric, "Product_Footprint")
    inner = _sub(outer, "Product_Footprint")
    footprint = _sub(inner, "Global_Footprint")
    _sub(footprint, "EXT_POS_LIST", _pos_list(info))
    _sub(outer, "RASTER_CS_TYPE", "POINT")
    _sub(outer, "PIXEL_ORIGIN", 1)
    crs = _sub(geometric, "Coordinate_Reference_System")
    _sub(crs, "GEO_TABLES", "EPSG", version="1")
    _sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    aux = _sub(root, f"{{{ns}}}Auxiliary_Data_Info")
    _sub(aux, "GIPP_List")
    _sub(aux, "PRODUCTION_DEM_TYPE", "CopernicusDEM90")

    quality = _sub(root, f"{{{ns}}}Quality_Indicators_Info")
    _sub(quality, "Cloud_Coverage_Assessment", f"{info.cloud_percentage:.6f}")
    technical = _sub(quality, "Technical_Quality_Assessment")
    _sub(technical, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    _sub(technical, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    checks = _sub(quality, "Quality_Control_Checks")
    inspections = _sub(checks, "Quality_Inspections")
    names = ["FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "RADIOMETRIC_QUALITY", "SENSOR_QUALITY"]
    if l2a:
        names.insert(3, "L2A_QUALITY")
    for name in names:
        _sub(inspections, "quality_check", "PASSED", checkType=name)
    _sub(checks, "Failed_Inspections")
    if l2a:
        content = _sub(quality, "Image_Content_QI")
        _image_content(content, info)
    return _serialise(root)


def _image_content(content: etree._Element, info: ProductInfo) -> None:
    _sub(content, "CLOUDY_PIXEL_OVER_LAND_PERCENTAGE", f"{info.cloud_percentage:.6f}")
    _sub(content, "NODATA_PIXEL_PERCENTAGE", f"{info.nodata_percentage:.6f}")
    for index, name in _PERCENT_NAMES:
        _sub(content, name, f"{info.class_percentages.get(index, 0.0):.6f}")


def tile_metadata(info: ProductInfo) -> bytes:
    """GRANULE/<granule>/MTD_TL.xml."""
    l2a = info.level == "L2A"
    kind = "Level-2A" if l2a else "Level-1C"
    ns = f"{PSD}S2_PDI_{kind}_Tile_Metadata.xsd"
    root = _psd_root(ns, f"{kind}_Tile_ID")
    general = _sub(root, f"{{{ns}}}General_Info")
    if l2a:
        l1c_id = info.tile_identifier.replace("MSI_L2A_TL", "MSI_L1C_TL")
        _sub(general, "L1C_TILE_ID", l1c_id, metadataLevel="Brief")
    _sub(general, "TILE_ID", info.tile_identifier, metadataLevel="Brief")
    _sub(general, "DATASTRIP_ID", info.datastrip_identifier, metadataLevel="Standard")
    _sub(general, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _sub(general, "SENSING_TIME", _t(info.sensing_time, micro=True), metadataLevel="Standard")
    archiving = _sub(general, "Archiving_Info", metadataLevel="Expertise")
    _sub(archiving, "ARCHIVING_CENTRE", "DEMO")
    _sub(archiving, "ARCHIVING_TIME", _t(info.generation_time, micro=True))

    geometric = _sub(root, f"{{{ns}}}Geometric_Info")
    geocoding = _sub(geometric, "Tile_Geocoding", metadataLevel="Brief")
    zone = info.epsg % 100
    hemi = "N" if info.epsg < 32700 else "S"
    _sub(geocoding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {zone}{hemi}")
    _sub(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{info.epsg}")
    for res in (10, 20, 60):
        size = _sub(geocoding, "Size", resolution=str(res))
        n = info.size_10m * 10 // res
        _sub(size, "NROWS", n)
        _sub(size, "NCOLS", n)
    for res in (10, 20, 60):
        pos = _sub(geocoding, "Geoposition", resolution=str(res))
        _sub(pos, "ULX", _num(info.ulx))
        _sub(pos, "ULY", _num(info.uly))
        _sub(pos, "XDIM", res)
        _sub(pos, "YDIM", -res)
    _tile_angles(_sub(geometric, "Tile_Angles", metadataLevel="Standard"), info)

    quality = _sub(root, f"{{{ns}}}Quality_Indicators_Info", metadataLevel="Standard")
    content = _sub(quality, "Image_Content_QI")
    _sub(content, "CLOUDY_PIXEL_PERCENTAGE", f"{info.cloud_percentage:.6f}")
    if l2a:
        _image_content(content, info)
    _sub(content, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    pixel_qi = _sub(quality, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
    for mask_type, path in info.qi_files:
        _sub(pixel_qi, "MASK_FILENAME", path, type=mask_type)
    return _serialise(root)


def _angle_grid(parent: etree._Element, tag: str, values: np.ndarray) -> None:
    """A ``Zenith`` / ``Azimuth`` element: steps and the rows of values (``NaN`` where none)."""
    el = _sub(parent, tag)
    _sub(el, "COL_STEP", 5000, unit="m")
    _sub(el, "ROW_STEP", 5000, unit="m")
    rows = _sub(el, "Values_List")
    for row in values:
        _sub(rows, "VALUES", " ".join("NaN" if np.isnan(v) else repr(float(v)) for v in row))


def _tile_angles(angles_el: etree._Element, info: ProductInfo) -> None:
    """Sun_Angles_Grid, Mean_Sun_Angle, Viewing_Incidence_Angles_Grids (per band and detector) and the
    per-band means (constant sun angles and no viewing grids without ``info.angles``)."""
    angles = info.angles
    n_grid = info.size_10m * 10 // 5000 + 2
    sun = (angles.sun_zenith, angles.sun_azimuth) if angles else (np.full((n_grid,) * 2, 45.0),
                                                                   np.full((n_grid,) * 2, 165.0))  # fmt: skip
    grid = _sub(angles_el, "Sun_Angles_Grid")
    _angle_grid(grid, "Zenith", sun[0])
    _angle_grid(grid, "Azimuth", sun[1])
    mean_sun = _sub(angles_el, "Mean_Sun_Angle")
    _sub(mean_sun, "ZENITH_ANGLE", repr(float(np.mean(sun[0]))), unit="deg")
    _sub(mean_sun, "AZIMUTH_ANGLE", repr(float(np.mean(sun[1]))), unit="deg")
    for (band_id, detector), (zenith, azimuth) in (angles.view if angles else {}).items():
        if np.isfinite(zenith).any():
            view = _sub(angles_el, "Viewing_Incidence_Angles_Grids", bandId=str(band_id), detectorId=str(detector))
            _angle_grid(view, "Zenith", zenith)
            _angle_grid(view, "Azimuth", azimuth)
    viewing = _sub(angles_el, "Mean_Viewing_Incidence_Angle_List")
    for _name, band_id, *_rest in BAND_TABLE:
        zenith, azimuth = angles.band_grids(band_id) if angles else (np.full(1, 5.0), np.full(1, 100.0))
        mean = _sub(viewing, "Mean_Viewing_Incidence_Angle", bandId=str(band_id))
        _sub(mean, "ZENITH_ANGLE", repr(float(np.nanmean(zenith))), unit="deg")
        _sub(mean, "AZIMUTH_ANGLE", repr(float(np.nanmean(azimuth))), unit="deg")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def clouds_gml(
    info: ProductInfo,
    polygons: list[tuple[str, list[list[tuple[float, float]]]]],
    bounds: tuple[float, float, float, float],
) -> bytes:
    """QI_DATA/MSK_CLOUDS_B00.gml: polygons (type OPAQUE / CIRRUS, rings in the tile CRS)."""
    root = etree.Element(f"{{{EOP}}}Mask", nsmap={"eop": EOP, "xsi": XSI, "gml": GML32})
    mask_id = f"{info.mission}_OPER_MSK_CLOUDS_DEMO_{info.generation_time:%Y%m%dT%H%M%S}_A{info.absolute_orbit:06d}"
    mask_id += f"_T{info.tile_id}_B00_MSIL1C"
    root.set(f"{{{GML32}}}id", mask_id)
    _sub(root, f"{{{GML32}}}name", f"MSK_CLOUDS pixels mask from data-strip {mask_id}")
    bounded = _sub(root, f"{{{GML32}}}boundedBy")
    srs = f"urn:ogc:def:crs:EPSG:8.7:{info.epsg}"
    if polygons:
        envelope = _sub(bounded, f"{{{GML32}}}Envelope", srsName=srs)
        _sub(envelope, f"{{{GML32}}}lowerCorner", f"{_num(bounds[0])} {_num(bounds[1])}")
        _sub(envelope, f"{{{GML32}}}upperCorner", f"{_num(bounds[2])} {_num(bounds[3])}")
    else:
        _sub(bounded, f"{{{GML32}}}Null", "Empty")
    members = _sub(root, f"{{{EOP}}}maskMembers")
    counters: dict[str, int] = {}
    for mask_type, rings in polygons:
        index = counters.get(mask_type, 0)
        counters[mask_type] = index + 1
        feature = _sub(members, f"{{{EOP}}}MaskFeature", **{f"{{{GML32}}}id": f"{mask_type}.{index}"})
        _sub(feature, f"{{{EOP}}}maskType", mask_type, codeSpace="urn:gs2:S2PDGS:maskType")
        extent = _sub(feature, f"{{{EOP}}}extentOf")
        polygon = _sub(extent, f"{{{GML32}}}Polygon", **{f"{{{GML32}}}id": f"{mask_type}.{index}_Polygon"})
        for ring_index, ring in enumerate(rings):
            holder = _sub(polygon, f"{{{GML32}}}exterior" if ring_index == 0 else f"{{{GML32}}}interior")
            linear = _sub(holder, f"{{{GML32}}}LinearRing")
            coords = " ".join(f"{_num(x)} {_num(y)}" for x, y in ring)
            _sub(linear, f"{{{GML32}}}posList", coords, srsDimension="2")
    return _serialise(root)


def manifest(info: ProductInfo, files: list[tuple[str, int, str]]) -> bytes:
    """manifest.safe: XFDU with the metadata section and one dataObject per file (size, SHA3-256)."""
    root = etree.Element(
        f"{{{XFDU}}}XFDU",
        nsmap={"gml": GML_SAFE, "safe": SAFE_NS, "xfdu": XFDU},
        version=f"esa/safe/sentinel/1.1/sentinel-2/msi/archive_{'l2a' if info.level == 'L2A' else 'l1c'}_user_product",
    )
    kind = "Level-2A" if info.level == "L2A" else "Level-1C"
    package = _sub(root, "informationPackageMap")
    unit = _sub(
        package,
        f"{{{XFDU}}}contentUnit",
        dmdID="acquisitionPeriod platform",
        pdiID="processing",
        textInfo=f"SENTINEL-2 MSI {kind} User Product",
        unitType=f"Product_{kind}",
    )
    for index, (path, _size, _digest) in enumerate(files):
        child = _sub(unit, f"{{{XFDU}}}contentUnit", ID=f"Unit_{index}", unitType="Measurement Data Unit")
        _sub(child, "dataObjectPointer", dataObjectID=_object_id(path, index))
    meta = _sub(root, "metadataSection")
    wraps = (
        ("acquisitionPeriod", "DMD", "DESCRIPTION", "Acquisition Period"),
        ("measurementOrbitReference", "DMD", "DESCRIPTION", "Orbit Reference"),
        ("platform", "DMD", "DESCRIPTION", "Platform Description"),
        ("processing", "PDI", "PROVENANCE", "Processing"),
        ("measurementFrameSet", "DMD", "DESCRIPTION", "Frame Set"),
    )
    for ident, category, classification, text in wraps:
        obj = _sub(meta, "metadataObject", ID=ident, category=category, classification=classification)
        wrap = _sub(obj, "metadataWrap", mimeType="text/xml", textInfo=text, vocabularyName="Sentinel-SAFE")
        data = _sub(wrap, "xmlData")
        if ident == "acquisitionPeriod":
            period = _sub(data, f"{{{SAFE_NS}}}acquisitionPeriod")
            _sub(period, f"{{{SAFE_NS}}}startTime", _t(info.sensing_time))
        elif ident == "measurementOrbitReference":
            orbit = _sub(data, f"{{{SAFE_NS}}}orbitReference")
            _sub(
                orbit,
                f"{{{SAFE_NS}}}orbitNumber",
                f"{info.absolute_orbit:06d}",
                groundTrackDirection="descending",
                type="start",
            )
            _sub(orbit, f"{{{SAFE_NS}}}relativeOrbitNumber", f"{info.relative_orbit:03d}", type="start")
        elif ident == "platform":
            platform = _sub(data, f"{{{SAFE_NS}}}platform")
            _sub(platform, f"{{{SAFE_NS}}}nssdcIdentifier", "2015-028A" if info.mission == "S2A" else "2017-013A")
            _sub(platform, f"{{{SAFE_NS}}}familyName", "SENTINEL")
            _sub(platform, f"{{{SAFE_NS}}}number", info.mission[1:])
            instrument = _sub(platform, f"{{{SAFE_NS}}}instrument")
            _sub(instrument, f"{{{SAFE_NS}}}familyName", "Multi-Spectral Instrument", abbreviation="MSI")
        elif ident == "processing":
            _sub(
                data,
                f"{{{SAFE_NS}}}processing",
                name=f"Generation of {kind} User Product",
                start=_t(info.generation_time, micro=True),
            )
        else:
            frame = _sub(data, f"{{{SAFE_NS}}}frameSet")
            foot = _sub(frame, f"{{{SAFE_NS}}}footPrint", srsName="http://www.opengis.net/gml/srs/epsg.xml#4326")
            _sub(foot, f"{{{GML_SAFE}}}coordinates", _pos_list(info))
    objects = _sub(root, "dataObjectSection")
    for index, (path, size, digest) in enumerate(files):
        obj = _sub(objects, "dataObject", ID=_object_id(path, index))
        mime = "text/xml" if path.endswith(".xml") else "application/octet-stream"
        stream = _sub(obj, "byteStream", mimeType=mime, size=str(size))
        _sub(stream, "fileLocation", href=f"./{path}", locatorType="URL")
        _sub(stream, "checksum", digest, checksumName="SHA3-256")
    return _serialise(root)


def _object_id(path: str, index: int) -> str:
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{name}_{index}"
