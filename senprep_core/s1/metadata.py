"""Read a Sentinel-1 GRD product (.SAFE folder or .zip, read in place) into :class:`S1Metadata`.

Files are matched per polarisation by their ESA names (``annotation/s1b-iw-grd-vv-....xml``,
``annotation/calibration/calibration-....xml``, ``.../noise-....xml``, ``measurement/....tiff``),
taken from the manifest's data objects and the product's members. Each XML is parsed once.

A polarisation whose annotation is present but whose measurement TIFF is missing is kept (its
expected member path is recorded and a warning logged): the metadata stays complete and reading
its pixels with :func:`senprep_core.s1.measurement.read_dn` fails with a clear error. Missing
calibration or noise XML give ``None`` (the chain raises when it needs them).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxml import etree

from senprep_core.errors import MetadataError
from senprep_core.productfs import ProductLocation
from senprep_core.s1.annotation import (
    AnnotationHeader,
    parse_annotation_header,
    parse_calibration,
    parse_image_annotation,
    parse_noise,
)
from senprep_core.s1.manifest import MANIFEST, ManifestInfo, parse_manifest
from senprep_core.s1.model import Calibration, Noise, S1Image, S1Metadata
from senprep_core.xmlsafe import parse_xml

log = logging.getLogger(__name__)

# s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001
_FILE_STEM = re.compile(
    r"^(?P<mission>s1[a-d])-(?P<swath>[a-z0-9]+)-(?P<type>[a-z]+)-(?P<pol>hh|hv|vh|vv)-"
    r"(?P<start>\d{8}t\d{6})-(?P<stop>\d{8}t\d{6})-(?P<orbit>\d{6})-(?P<take>[0-9a-f]{6})-(?P<number>\d{3})$"
)
_PRODUCT_NAME = re.compile(r"^S1[A-D]_(?:IW|EW|SM|S[1-6]|WV)_(?P<type>[A-Z]{3})(?P<res>[FHM_])_", re.IGNORECASE)


@dataclass(frozen=True)
class _ImageFiles:
    """The members of one polarisation (measurement may be a missing member, see module docstring)."""

    stem: str
    annotation: str
    measurement: str
    calibration: str | None
    noise: str | None


def _stem_of(member: str, prefix: str = "") -> str | None:
    """The ESA file stem of a member (``calibration-`` / ``noise-`` prefix removed), or None."""
    name = PurePosixPath(member).name.lower()
    if prefix:
        if not name.startswith(prefix):
            return None
        name = name[len(prefix) :]
    stem = name.rsplit(".", 1)[0]
    return stem if _FILE_STEM.match(stem) else None


def _classify(location: ProductLocation, manifest: ManifestInfo) -> dict[str, _ImageFiles]:
    """The files of each image, keyed by file stem, from the product members and the manifest list."""
    members = location.members()
    present = {m.lower(): m for m in members}
    listed = {m.lower(): m for m in manifest.files}

    def by_stem(folder: str, suffixes: tuple[str, ...], prefix: str, pool: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for low, original in pool.items():
            parent = str(PurePosixPath(low).parent)
            if parent == folder and low.endswith(suffixes):
                stem = _stem_of(low, prefix)
                if stem is not None:
                    out.setdefault(stem, original)
        return out

    annotations = by_stem("annotation", (".xml",), "", present)
    # a partial SAFE fetched for a run (ROI mode) holds only the polarisations asked for, on purpose
    partial = ".complete" in present
    for stem, member in by_stem("annotation", (".xml",), "", listed).items():
        if stem not in annotations:
            log.log(
                logging.INFO if partial else logging.WARNING,
                "%s: the manifest lists %s but the product lacks it; that image is skipped",
                location.path.name,
                member,
            )
    calibrations = by_stem("annotation/calibration", (".xml",), "calibration-", present)
    noises = by_stem("annotation/calibration", (".xml",), "noise-", present)
    measurements = by_stem("measurement", (".tiff", ".tif"), "", present)
    listed_measurements = by_stem("measurement", (".tiff", ".tif"), "", listed)

    images: dict[str, _ImageFiles] = {}
    for stem, annotation in sorted(annotations.items()):
        measurement = measurements.get(stem)
        if measurement is None:
            measurement = listed_measurements.get(stem, f"measurement/{stem}.tiff")
            log.warning(
                "%s lacks %s; its metadata is read but its pixels cannot be (download the complete product)",
                location.path.name,
                measurement,
            )
        images[stem] = _ImageFiles(
            stem=stem,
            annotation=annotation,
            measurement=measurement,
            calibration=calibrations.get(stem),
            noise=noises.get(stem),
        )
    return images


def _parse_member(location: ProductLocation, member: str) -> tuple[etree._Element, str]:
    label = f"{member} of {location.path.name}"
    return parse_xml(location.read_bytes(member), label), label


def _product_id(location: ProductLocation) -> str:
    """The product name: the folder/zip name, or the zip's inner .SAFE folder when only that is an ESA name."""
    if _PRODUCT_NAME.match(location.name):
        return location.name
    inner = location.root.rstrip("/").removesuffix(".SAFE").removesuffix(".safe")
    return inner if _PRODUCT_NAME.match(inner) else location.name


def _resolution_class(product_id: str, range_spacing: float) -> str:
    """H / M / F from the product name; guessed from the pixel spacing when the name is not an ESA name."""
    m = _PRODUCT_NAME.match(product_id)
    if m and m["res"] != "_":
        return m["res"].upper()
    guess = "F" if range_spacing < 6 else "H" if range_spacing < 30 else "M"
    log.warning("%s is not an ESA product name; resolution class %s guessed from the pixel spacing", product_id, guess)
    return guess


def _check_grd(manifest: ManifestInfo, product_id: str) -> None:
    if manifest.product_type != "GRD":
        raise MetadataError(
            f"{product_id} is a {manifest.product_type} product; senprep processes GRD products "
            "(names like S1A_IW_GRDH_...): download the GRD product of this acquisition instead"
        )


def read_s1_metadata(path_or_location: str | Path | ProductLocation) -> S1Metadata:
    """Read a Sentinel-1 GRD product (``.SAFE`` folder or ``.zip``, never extracted).

    Raises :class:`MetadataError` for a non-GRD product, a missing manifest or annotation, or
    malformed XML (naming the file); :class:`ProductNotFoundError` when the path does not exist.
    """
    location = (
        path_or_location if isinstance(path_or_location, ProductLocation) else ProductLocation.open(path_or_location)
    )
    product_id = _product_id(location)
    if MANIFEST not in location.members():
        raise MetadataError(
            f"{location.path} has no {MANIFEST}; it is not a complete Sentinel-1 SAFE product: download it again"
        )
    manifest = parse_manifest(location.read_bytes(MANIFEST), f"{MANIFEST} of {location.path.name}")
    _check_grd(manifest, product_id)

    files = _classify(location, manifest)
    if not files:
        raise MetadataError(
            f"{product_id} holds no annotation/s1?-*-grd-*.xml file; the product is incomplete: download it again"
        )
    parsed: list[tuple[_ImageFiles, etree._Element, str, AnnotationHeader]] = []
    for image_files in files.values():
        root, label = _parse_member(location, image_files.annotation)
        header = parse_annotation_header(root, label)
        if header.product_type != "GRD":
            raise MetadataError(
                f"{label} describes a {header.product_type} image; senprep processes GRD products: "
                "download the GRD product of this acquisition instead"
            )
        parsed.append((image_files, root, label, header))
    parsed.sort(key=lambda item: (item[3].image_number, item[3].polarisation))
    epoch = parsed[0][3].first_line_time

    images: dict[str, S1Image] = {}
    for image_files, root, label, header in parsed:
        if header.polarisation in images:
            raise MetadataError(
                f"{product_id} holds two {header.polarisation} annotation files; keep one product per folder/zip"
            )
        ann = parse_image_annotation(root, epoch, label)
        calibration: Calibration | None = None
        if image_files.calibration is not None:
            cal_root, cal_label = _parse_member(location, image_files.calibration)
            calibration = parse_calibration(cal_root, cal_label)
        else:
            log.warning("%s has no calibration XML for %s", product_id, header.polarisation)
        noise: Noise | None = None
        if image_files.noise is not None:
            noise_root, noise_label = _parse_member(location, image_files.noise)
            noise = parse_noise(noise_root, noise_label)
        images[header.polarisation] = S1Image(
            polarisation=ann.polarisation,
            swath=ann.swath,
            measurement=image_files.measurement,
            annotation=image_files.annotation,
            calibration_file=image_files.calibration,
            noise_file=image_files.noise,
            lines=ann.lines,
            samples=ann.samples,
            first_line_time=ann.first_line_time,
            last_line_time=ann.last_line_time,
            azimuth_time_interval=ann.azimuth_time_interval,
            range_pixel_spacing=ann.range_pixel_spacing,
            azimuth_pixel_spacing=ann.azimuth_pixel_spacing,
            slant_range_time=ann.slant_range_time,
            radar_frequency=ann.radar_frequency,
            range_sampling_rate=ann.range_sampling_rate,
            incidence_angle_mid=ann.incidence_angle_mid,
            bistatic_delay_applied=ann.bistatic_delay_applied,
            pass_direction=ann.pass_direction,
            orbit=ann.orbit,
            geolocation=ann.geolocation,
            conversion=ann.conversion,
            calibration=calibration,
            noise=noise,
        )

    first = next(iter(images.values()))
    if first.pass_direction != manifest.orbit_direction:
        log.warning(
            "%s: the manifest says %s but the annotation %s; using the manifest",
            product_id,
            manifest.orbit_direction,
            first.pass_direction,
        )
    mode = "SM" if re.fullmatch(r"S[1-6]", manifest.mode) else manifest.mode
    return S1Metadata(
        product_id=product_id,
        location=location,
        mission=manifest.mission,
        mode=mode,
        product_type=manifest.product_type,
        resolution_class=_resolution_class(product_id, first.range_pixel_spacing),
        polarisations=tuple(images),
        orbit_direction=manifest.orbit_direction,
        absolute_orbit=manifest.absolute_orbit,
        relative_orbit=manifest.relative_orbit,
        slice_number=manifest.slice_number,
        start_time=manifest.start_time,
        stop_time=manifest.stop_time,
        footprint_wkt=manifest.footprint_wkt,
        ipf_version=manifest.ipf_version,
        epoch=epoch,
        images=images,
    )
