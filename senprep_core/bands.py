"""Band vocabulary: canonical band names, their native resolution and the legacy aliases.

Canonical Sentinel-2 names are the ESA band ids (``B02``, ``B8A``), ``SCL``, mask names
(``scl_cloud_shadow``, ``opaque_clouds``, ``cloud_probability``...) and the sun / viewing angle names
of SNAP's Sentinel-2 reader (``sun_zenith``, ``view_azimuth_mean``, ``view_zenith_B8A``...). Legacy senprep configs
used SNAP collocation names with a ``_M`` (master) or ``_S`` (slave) suffix, e.g. ``B4_M``,
``scl_cloud_shadow_M``, ``view_zenith_B4_M``, ``Sigma0_VV_S``; :func:`canonical_s2_band` and
:func:`canonical_s1_band` map those onto the canonical names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from senprep_core.errors import UnknownBandError


class BandKind(str, Enum):
    """How a band's values are produced and resampled."""

    REFLECTANCE = "reflectance"  # float reflectance, bilinear/cubic resampling
    CLASSES = "classes"  # integer classes (SCL), nearest resampling
    MASK = "mask"  # 0/1 mask derived from a class or mask layer, nearest
    PROBABILITY = "probability"  # 0-100 % layer, bilinear
    AUXILIARY = "auxiliary"  # AOT / WVP, scaled physical value, bilinear
    BACKSCATTER = "backscatter"  # S1 calibrated intensity
    ANGLE = "angle"  # sun / viewing angle in degrees from the tile's 5 km angle grids, bilinear


@dataclass(frozen=True)
class BandInfo:
    """What senprep knows of one canonical band."""

    name: str
    kind: BandKind
    resolution: int  # native resolution in metres
    description: str
    levels: tuple[str, ...] = ("L1C", "L2A")


S2_REFLECTANCE: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip

#: SCL class value of each ``scl_*`` mask band (ESA L2A scene classification).
SCL_CLASSES: dict[str, int] = {
    "scl_no_data": 0,
    "scl_saturated_defective": 1,
    "scl_dark_features_shadows": 2,
    "scl_cloud_shadow": 3,
    "scl_vegetation": 4,
    "scl_not_vegetated": 5,
    "scl_water": 6,
    "scl_unclassified": 7,
    "scl_cloud_medium_proba": 8,
    "scl_cloud_high_proba": 9,
    "scl_thin_cirrus": 10,
    "scl_snow_ice": 11,
}

#: Resolution (metres) recorded for the angle bands: the step of the tile metadata's angle grids.
ANGLE_GRID_STEP = 5000
#: The angle bands that do not belong to one spectral band (SNAP's names).
TILE_ANGLES = ("sun_zenith", "sun_azimuth", "view_zenith_mean", "view_azimuth_mean")


def view_angle_band(angle: str, band: str) -> str:
    """The canonical name of a band's viewing angle: ``view_angle_band("zenith", "B8A")`` -> ``view_zenith_B8A``."""
    return f"view_{angle}_{band}"


#: Layers of the MSK_CLASSI_B00 raster (baseline >= 04.00) or MSK_CLOUDS_B00.gml (older), in band order.
CLASSI_LAYERS: dict[str, int] = {"opaque_clouds": 1, "cirrus_clouds": 2, "snow_ice_areas": 3}


def _build_s2() -> dict[str, BandInfo]:
    bands: dict[str, BandInfo] = {}
    for name, res in S2_REFLECTANCE.items():
        levels = ("L1C",) if name == "B10" else ("L1C", "L2A")
        bands[name] = BandInfo(name, BandKind.REFLECTANCE, res, f"{name} reflectance", levels)
    bands["SCL"] = BandInfo("SCL", BandKind.CLASSES, 20, "scene classification (0-11)", ("L2A",))
    bands["AOT"] = BandInfo("AOT", BandKind.AUXILIARY, 20, "aerosol optical thickness (DN/1000)", ("L2A",))
    bands["WVP"] = BandInfo("WVP", BandKind.AUXILIARY, 20, "water vapour (DN/1000 cm)", ("L2A",))
    for name, value in SCL_CLASSES.items():
        bands[name] = BandInfo(name, BandKind.MASK, 20, f"1 where SCL == {value}", ("L2A",))
    for name in CLASSI_LAYERS:
        bands[name] = BandInfo(name, BandKind.MASK, 60, f"1 where the {name.replace('_', ' ')} mask is set")
    bands["cloud_probability"] = BandInfo(
        "cloud_probability", BandKind.PROBABILITY, 20, "cloud probability %", ("L2A",)
    )
    bands["snow_probability"] = BandInfo("snow_probability", BandKind.PROBABILITY, 20, "snow probability %", ("L2A",))
    bands.update(_angle_bands())
    return bands


def _angle_bands() -> dict[str, BandInfo]:
    """Sun and viewing incidence angles (degrees), in SNAP's order: sun, mean view, then per band."""
    names = {
        "sun_zenith": "solar zenith angle (degrees)",
        "sun_azimuth": "solar azimuth angle (degrees, clockwise from north)",
        "view_zenith_mean": "viewing incidence zenith angle, mean over the bands (degrees)",
        "view_azimuth_mean": "viewing incidence azimuth angle, mean over the bands (degrees, clockwise from north)",
    }
    for band in S2_REFLECTANCE:
        names[view_angle_band("zenith", band)] = f"viewing incidence zenith angle of {band} (degrees)"
        names[view_angle_band("azimuth", band)] = (
            f"viewing incidence azimuth angle of {band} (degrees, clockwise from north)"
        )
    return {name: BandInfo(name, BandKind.ANGLE, ANGLE_GRID_STEP, text) for name, text in names.items()}


S2_BANDS: dict[str, BandInfo] = _build_s2()

#: Legacy (SNAP) names that are not a plain rename of a canonical one.
_S2_ALIASES: dict[str, str] = {
    "opaque_clouds_10m": "opaque_clouds",
    "opaque_clouds_20m": "opaque_clouds",
    "opaque_clouds_60m": "opaque_clouds",
    "cirrus_clouds_10m": "cirrus_clouds",
    "cirrus_clouds_20m": "cirrus_clouds",
    "cirrus_clouds_60m": "cirrus_clouds",
    "snow_and_ice_areas": "snow_ice_areas",
    "snow_ice_areas_10m": "snow_ice_areas",
    "quality_cloud_confidence": "cloud_probability",
    "quality_snow_confidence": "snow_probability",
    "quality_scene_classification": "SCL",
    "quality_aot": "AOT",
    "quality_wvp": "WVP",
    "scl_dark_feature_shadow": "scl_dark_features_shadows",
    "scl_saturated_defective_pixel": "scl_saturated_defective",
}

S1_POLARISATIONS = ("VV", "VH", "HH", "HV")
S1_CALIBRATIONS = ("sigma0", "gamma0", "beta0", "gamma0T")  # gamma0T: terrain-flattened (Small 2011)
#: Sentinel-1 layers that are not backscatter, and what they hold.
S1_LAYERS: dict[str, str] = {
    "local_incidence_angle": "local incidence angle on the DEM (degrees)",
    "layover_shadow": "1 where layover, 2 where shadow, 3 where both (from the DEM facets in radar geometry)",
    "local_contributing_area": "gamma0 reference area of the radar pixel seen at the cell over the flat-ellipsoid one"
    " (1 on flat ground; Small 2011)",
    "collocation_flags": "bits of the products holding data at the pixel: 1 = S2, 2 = S1, 4 = the earlier S1",
}
#: The layer of the 2022 SNAP collocation (``collocationFlags``): which of the unit's products hold data.
COLLOCATION_FLAGS = "collocation_flags"
#: The bit of each modality in ``collocation_flags`` (a pair's pixel where both sensors hold data is 3); the older
#: members of an S1 stack (``S1_t1``...) share the ``S1_previous`` bit.
COLLOCATION_BITS = {"S2": 1, "S1": 2, "S1_previous": 4}

_SUFFIX = re.compile(r"_(M|S)$")
_VIEW_ANGLE = re.compile(r"(?i)view_(zenith|azimuth)_b(\d{1,2}|8a)")
_S1_BACKSCATTER = re.compile(r"(?i)(sigma0|gamma0t|gamma0|beta0)_(vv|vh|hh|hv)(_db)?")


@dataclass(frozen=True)
class S1Band:
    """One Sentinel-1 output band: a calibrated polarisation (optionally in dB) or a layer of :data:`S1_LAYERS`."""

    name: str
    calibration: str | None = None  # sigma0 | beta0 | gamma0 | gamma0T
    polarisation: str | None = None
    db: bool = False

    @property
    def is_backscatter(self) -> bool:
        return self.calibration is not None


def _strip_suffix(name: str) -> str:
    return _SUFFIX.sub("", name.strip())


def _band_number(number: str) -> str:
    """``"4"`` -> ``B04``, ``"8a"`` -> ``B8A`` (not checked against the vocabulary)."""
    return "B8A" if number.upper() == "8A" else f"B{int(number):02d}"


def canonical_s2_band(name: str, key: str = "bands_S2") -> str:
    """Map a canonical or legacy Sentinel-2 band name onto its canonical name.

    ``B4_M`` -> ``B04``, ``B8A_M`` -> ``B8A``, ``scl_cloud_shadow_M`` -> ``scl_cloud_shadow``,
    ``opaque_clouds_10m_M`` -> ``opaque_clouds``, ``view_zenith_B4_M`` -> ``view_zenith_B04``,
    ``sun_azimuth_M`` -> ``sun_azimuth``. Unknown names raise :class:`UnknownBandError`.
    """
    base = _strip_suffix(name)
    if base in S2_BANDS:
        return base
    if base in _S2_ALIASES:
        return _S2_ALIASES[base]
    m = re.fullmatch(r"[Bb](\d{1,2}|8[Aa])", base)
    if m and _band_number(m.group(1)) in S2_BANDS:
        return _band_number(m.group(1))
    m = _VIEW_ANGLE.fullmatch(base)
    if m and _band_number(m.group(2)) in S2_REFLECTANCE:
        return view_angle_band(m.group(1).lower(), _band_number(m.group(2)))
    lowered = base.lower()
    for candidate in S2_BANDS:
        if candidate.lower() == lowered:
            return candidate
    raise UnknownBandError(
        key,
        name,
        f"use one of {', '.join(S2_BANDS)} (legacy names like 'B4_M', 'scl_cloud_shadow_M' or "
        "'view_zenith_B4_M' also work)",
    )


def parse_s1_band(name: str, key: str = "sentinel1.bands") -> S1Band:
    """The :class:`S1Band` of a canonical or legacy (2022 SNAP) name: ``sigma0_VV``, ``gamma0T_VH_dB``,
    ``Sigma0_VV_S``, ``local_incidence_angle``, ``collocationFlags``. Unknown names raise :class:`UnknownBandError`."""
    base = _strip_suffix(str(name))
    if base == "collocationFlags" or base.lower() in S1_LAYERS:
        return S1Band(COLLOCATION_FLAGS if base == "collocationFlags" else base.lower())
    m = _S1_BACKSCATTER.fullmatch(base)
    if m:
        calibration = "gamma0T" if m.group(1).lower() == "gamma0t" else m.group(1).lower()
        polarisation, db = m.group(2).upper(), bool(m.group(3))
        return S1Band(f"{calibration}_{polarisation}" + ("_dB" if db else ""), calibration, polarisation, db)
    examples = ", ".join(f"{c}_{p}" for c in S1_CALIBRATIONS for p in ("VV", "VH"))
    raise UnknownBandError(
        key,
        name,
        f"use a calibration and polarisation like {examples} (legacy 'Sigma0_VV_S' works), optionally "
        f"with _dB, or one of {', '.join(S1_LAYERS)}",
    )


def canonical_s1_band(name: str, key: str = "bands_S1") -> str:
    """Map a canonical or legacy Sentinel-1 band name (``Sigma0_VV_S``) onto ``sigma0_VV``."""
    return parse_s1_band(name, key).name


def parse_s1_bands(names: Sequence[str], key: str = "sentinel1.bands") -> list[S1Band]:
    """The :class:`S1Band` of each name, in order."""
    return [parse_s1_band(n, key) for n in names]


def s2_band_info(name: str) -> BandInfo:
    """The :class:`BandInfo` of a canonical Sentinel-2 band name."""
    return S2_BANDS[canonical_s2_band(name)]
