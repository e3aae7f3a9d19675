"""Checks and parsers for single configuration values, shared by the modern and legacy forms.

Each function takes the raw value and the key it was read from, and returns the value in its
canonical type (a float, a band-name tuple, a :class:`~senprep_core.geo.tiling.PatchLayout`...)
or raises :class:`~senprep_core.errors.ConfigError` (or a subclass) naming the key, the value
and the fix. The checks the packages below the configuration share with it (numbers, choices, the
cloud-cover range) are in :mod:`senprep_core.checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from pyproj import CRS
from pyproj.exceptions import CRSError

from senprep_core.bands import canonical_s1_band, canonical_s2_band
from senprep_core.checks import check_choice, check_number
from senprep_core.errors import ConfigError
from senprep_core.geo.roi import ROI
from senprep_core.geo.tiling import EdgePolicy, PatchLayout
from senprep_core.timeutil import DateWindow

__all__ = [
    "canonical_bands",
    "check_bool",
    "check_fraction",
    "check_name",
    "check_percent",
    "check_positive",
    "check_resolution",
    "parse_date",
    "parse_epsg",
    "parse_patch_layout",
    "parse_roi",
    "parse_s1_product",
    "parse_s2_level",
    "parse_window",
]


def check_positive(value: object, key: str) -> float:
    number = check_number(value, key)
    if number <= 0:
        raise ConfigError(key, value, "give a number greater than 0")
    return number


def check_percent(value: object, key: str) -> float:
    number = check_number(value, key)
    if not 0 <= number <= 100:
        raise ConfigError(key, value, "give a percentage between 0 and 100")
    return number


def check_fraction(value: object, key: str) -> float:
    number = check_number(value, key)
    if not 0 <= number <= 1:
        raise ConfigError(key, value, "give a fraction between 0 and 1 (e.g. 0.5 for half)")
    return number


def check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "give true or false")
    return value


def check_name(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, "give a non-empty name (it names the output folder)")
    if any(c in value for c in "/\\\0") or value.strip() in (".", ".."):
        raise ConfigError(key, value, "use a plain name without '/', '\\' or '..' (it names the output folder)")
    return value


def parse_date(value: object, key: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is not None:
        for fmt in ("%Y%m%d", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    raise ConfigError(key, value, "write dates as 'YYYY-MM-DD' or 'YYYYMMDD' (a real calendar day)")


def parse_window(value: object, key: str) -> DateWindow:
    """A ``[start, end]`` pair of dates (``YYYY-MM-DD`` or ``YYYYMMDD``) as a :class:`DateWindow`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(key, value, "give a window as [start, end], e.g. ['2023-05-01', '2023-05-31']")
    start, end = parse_date(value[0], key), parse_date(value[1], key)
    if end < start:
        raise ConfigError(key, list(value), "the end date must be on or after the start date; swap the two dates")
    return DateWindow(start, end)


def _int_pair(value: object, key: str) -> tuple[int, int]:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(key, value, "give two whole numbers of pixels [height, width], e.g. [256, 256]")
    return (int(value[0]), int(value[1]))


#: Largest patch side in pixels (a 16384 x 16384 float32 band is 1 GiB).
MAX_PATCH_SIZE = 16384
#: Finest and coarsest grid resolutions in metres (Sentinel-2's finest bands are 10 m; S1 GRD pixels 10 m).
RESOLUTION_RANGE = (1.0, 10_000.0)


def check_resolution(value: object, key: str) -> float:
    """A grid resolution in metres within :data:`RESOLUTION_RANGE`."""
    number = check_positive(value, key)
    low, high = RESOLUTION_RANGE
    if not low <= number <= high:
        fix = (
            f"give a resolution from {low:g} to {high:g} m: Sentinel-2's finest bands are 10 m, so finer grids "
            "only repeat pixels (and a 0.001 m grid would need terabytes)"
        )
        raise ConfigError(key, value, fix)
    return number


def parse_patch_layout(size: object, overlap: object, edge: object, keys: tuple[str, str, str]) -> PatchLayout:
    size_pair = _int_pair(size, keys[0])
    if min(size_pair) <= 0:
        raise ConfigError(keys[0], list(size_pair), "patch sizes must be positive, e.g. [256, 256]")
    if max(size_pair) > MAX_PATCH_SIZE:
        fix = (
            f"a patch side is at most {MAX_PATCH_SIZE} pixels (a patch must fit in memory with its neighbours); "
            "machine-learning patches are usually 64 to 1024"
        )
        raise ConfigError(keys[0], list(size_pair), fix)
    overlap_pair = _int_pair(overlap, keys[1])
    if min(overlap_pair) < 0 or overlap_pair[0] >= size_pair[0] or overlap_pair[1] >= size_pair[1]:
        raise ConfigError(
            keys[1], list(overlap_pair), f"overlap must be >= 0 and smaller than the patch size {list(size_pair)}"
        )
    policies = [p.value for p in EdgePolicy]
    policy = edge if isinstance(edge, EdgePolicy) else EdgePolicy(check_choice(edge, keys[2], policies))
    return PatchLayout(size=size_pair, overlap=overlap_pair, edge=policy)


def _band_list(value: object, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(key, value, "give a list of band names, e.g. [B02, B03, B04]")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(key, item, "band names must be strings, e.g. 'B04' or 'sigma0_VV'")
    return list(value)


def canonical_bands(value: object, key: str, s1: bool) -> tuple[str, ...]:
    """Canonical, de-duplicated band names in the given order."""
    out: list[str] = []
    for name in _band_list(value, key):
        canonical = canonical_s1_band(name, key) if s1 else canonical_s2_band(name, key)
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def parse_s2_level(value: object, key: str) -> str:
    names = {"L2A": "L2A", "S2MSI2A": "L2A", "2A": "L2A", "L1C": "L1C", "S2MSI1C": "L1C", "1C": "L1C"}
    if isinstance(value, str) and value.strip().upper() in names:
        return names[value.strip().upper()]
    raise ConfigError(key, value, "use L2A (S2MSI2A) or L1C (S2MSI1C)")


def parse_s1_product(value: object, key: str) -> str:
    if isinstance(value, str) and value.strip().upper() == "GRD":
        return "GRD"
    raise ConfigError(key, value, "only GRD Sentinel-1 products are supported; use GRD")


def parse_epsg(value: object, key: str) -> int | None:
    if value is None:
        return None
    code: object = value
    if isinstance(value, str) and value.strip().upper().startswith("EPSG:"):
        code = value.strip()[5:]
    try:
        if not isinstance(code, (int, str)) or isinstance(code, bool):
            raise TypeError(code)
        number = int(code)
        crs = CRS.from_epsg(number)
    except (ValueError, TypeError, CRSError) as exc:
        raise ConfigError(key, value, "give an EPSG code of a projected CRS in metres (e.g. 32630), or null") from exc
    if not crs.is_projected:
        raise ConfigError(key, value, "the grid needs a projected CRS in metres (e.g. a UTM zone), or null for auto")
    return number


def parse_roi(value: object, name: str, key: str) -> ROI:
    if not isinstance(value, (str, dict)):
        raise ConfigError(key, value, "give a GeoJSON object (Polygon, Feature, FeatureCollection) or a string of one")
    return ROI.from_geojson(value, name=name, key=key)
