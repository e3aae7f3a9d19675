"""EW (GRDM) and stripmap (S1-S6 GRDH) products: simulated, read and processed like IW, checked against truth.

The simulator writes each mode's annotation differences (names, ``adsHeader`` mode and swath, five EW
sub-swaths with their own azimuth noise blocks and merge bounds, 40 m GRDM spacing); the chain must find
point targets within 0.5 px and sigma0 over homogeneous areas within 0.2 dB, as for IW.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import maximum_filter, minimum_filter

from senprep_core.catalog.local import _s1_record
from senprep_core.config import parse_config
from senprep_core.demo.s1 import make_s1_product, s1_ground_truth
from senprep_core.demo.s1_modes import MODES
from senprep_core.demo.s1_spec import S1DemoSpec, S1Truth
from senprep_core.errors import ConfigError
from senprep_core.fetch.cache import default_cache_dir
from senprep_core.planning import unit_spec
from senprep_core.productfs import ProductLocation
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.positions import lonlat_of
from senprep_core.unit.s1_source import S1Source
from tests.test_s1_closed_loop import _peak_offsets

WHEN = datetime(2022, 5, 3, 17, 41, 35)
# (mode, polarisations, lines, samples): EW cut to 16 x 12 km at 40 m
CASES = [("EW", ("HH", "HV"), 400, 300), ("EW", ("VV", "VH"), 400, 300), ("S3", ("VV", "VH"), 1500, 1200),
         ("S6", ("HH", "HV"), 1500, 1200)]  # fmt: skip


def _spec(mode: str, pols: tuple[str, ...], lines: int, samples: int, **more: object) -> S1DemoSpec:
    return S1DemoSpec.in_mode(mode, start_time=WHEN, centre_lon=-4.25, centre_lat=55.86, polarisations=pols,
                              lines=lines, samples=samples, dem="hilly", seed=9, **more)  # fmt: skip


def _run(spec: S1DemoSpec, tmp: Path, bands: list[str], **s1: object) -> tuple[S1Source, np.ndarray, S1Truth]:
    """The chain on the central part of the scene, on a grid of the product's pixel spacing."""
    product = make_s1_product(spec, tmp / "products")
    truth = s1_ground_truth(spec)
    dem = truth.write_dem(tmp / f"dem-{spec.digest}.tif", resolution_deg=1 / 7200)
    lons = [p[0] for p in truth.footprint]
    lats = [p[1] for p in truth.footprint]
    cx, cy = (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    hx, hy = (max(lons) - min(lons)) * 0.28, (max(lats) - min(lats)) * 0.28
    ring = [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy], [cx - hx, cy - hy]]
    config = parse_config({"name": "modes", "roi": {"type": "Polygon", "coordinates": [ring]},
                           "dates": ["2021-01-01", "2023-12-31"], "mode": "s1_only",
                           "grid": {"resolution": spec.pixel_spacing},
                           "sentinel1": {"bands": bands, "dem": str(dem), **s1}})  # fmt: skip
    record = _s1_record(ProductLocation.open(product), "local")
    source = S1Source(record, "modes", unit_spec(config), default_cache_dir())
    return source, source.read_block(source.grid).data, truth


READ_CASES = CASES + [(f"S{k}", ("VV",), 200, 160) for k in (1, 2, 4, 5)]


@pytest.mark.parametrize(("mode", "pols", "lines", "samples"), READ_CASES)
def test_mode_products_read_like_their_mode(mode: str, pols: tuple[str, ...], lines: int, samples: int,
                                            tmp_path: Path) -> None:  # fmt: skip
    spec = _spec(mode, pols, lines, samples)
    product = make_s1_product(spec, tmp_path)
    meta = read_s1_metadata(product)
    family = MODES[mode].family
    assert meta.mode == family and meta.product_id.startswith(f"S1A_{mode}_GRD{MODES[mode].resolution}_")
    assert meta.polarisations == pols
    image = meta.image(pols[0])
    assert image.swath == mode
    assert image.range_pixel_spacing == pytest.approx(MODES[mode].pixel_spacing)
    swaths = [b.swath for b in image.noise.azimuth] if image.noise is not None else []
    assert swaths == list(MODES[mode].subswaths)
    if mode == "EW":  # five blocks side by side covering the whole range
        blocks = image.noise.azimuth  # type: ignore[union-attr]
        assert blocks[0].first_pixel == 0 and blocks[-1].last_pixel == samples - 1
        assert all(a.last_pixel + 1 == b.first_pixel for a, b in itertools.pairwise(blocks))


@pytest.mark.parametrize(("mode", "pols", "lines", "samples"), [CASES[0], CASES[2]])
def test_mode_point_targets_within_half_a_pixel(mode: str, pols: tuple[str, ...], lines: int, samples: int,
                                                tmp_path: Path) -> None:  # fmt: skip
    spec = _spec(mode, pols, lines, samples, looks=math.inf, nesz_db=None)
    source, data, truth = _run(spec, tmp_path, [f"sigma0_{pols[0]}"], speckle_filter="none", noise_removal=False)
    errors = _peak_offsets(data[0], source, truth.point_targets)
    assert len(errors) >= 3, "the ROI should hold several point targets"
    assert max(errors) < 0.5, errors


SIGMA0_CASES = [(*c, "003.71") for c in CASES] + [(*CASES[0], "002.84")]  # + EW in the pre-2.90 noise format


@pytest.mark.parametrize(("mode", "pols", "lines", "samples", "ipf"), SIGMA0_CASES)
def test_mode_sigma0_matches_the_truth_within_0p2_db(mode: str, pols: tuple[str, ...], lines: int, samples: int,
                                                     ipf: str, tmp_path: Path) -> None:  # fmt: skip
    # the mode's looks and thermal noise (IPF >= 2.90: an azimuth noise block per sub-swath)
    spec = _spec(mode, pols, lines, samples, ipf_version=ipf)
    source, data, truth = _run(spec, tmp_path, [f"sigma0_{p}" for p in pols], speckle_filter="none")
    floor = 2 * 10 ** (spec.nesz_db / 10) if spec.nesz_db is not None else 0.0
    lon, lat = lonlat_of(source.grid)
    checked = []
    for band, pol in enumerate(pols):
        expected = truth.sigma0(pol, lat, lon)
        flat = maximum_filter(expected, size=5) == minimum_filter(expected, size=5)
        for value in np.unique(expected[flat]):
            sel = flat & (expected == value) & np.isfinite(data[band])
            if sel.sum() < 150 or value < floor:
                continue
            checked.append((pol, float(value), float(10 * np.log10(float(np.mean(data[band][sel])) / value))))
    assert len(checked) >= 3, checked
    assert max(abs(c[2]) for c in checked) < 0.2, checked


def test_unknown_demo_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        _spec("XW", ("VV",), 100, 100)
    with pytest.raises(ConfigError, match="mode"):
        replace(_spec("IW", ("VV",), 100, 100), mode="WV")


@pytest.mark.parametrize(("mode", "pols", "lines", "samples"), [CASES[1], CASES[3]])
def test_mode_products_run_end_to_end(mode: str, pols: tuple[str, ...], lines: int, samples: int,
                                      tmp_path: Path) -> None:  # fmt: skip
    import json

    from senprep_core.pipeline import run

    spec = _spec(mode, pols, lines, samples)
    make_s1_product(spec, tmp_path / "products")
    truth = s1_ground_truth(spec)
    lons = [p[0] for p in truth.footprint]
    lats = [p[1] for p in truth.footprint]
    cx, cy = (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    ring = [[cx - 0.01, cy - 0.006], [cx + 0.01, cy - 0.006], [cx + 0.01, cy + 0.006], [cx - 0.01, cy + 0.006],
            [cx - 0.01, cy - 0.006]]  # fmt: skip
    config = parse_config({"name": "modes", "roi": {"type": "Polygon", "coordinates": [ring]},
                           "dates": ["2022-05-01", "2022-05-05"], "mode": "s1_only", "patches": {"size": [64, 64]},
                           "sentinel1": {"bands": [f"sigma0_{pols[0]}_dB", f"sigma0_{pols[1]}_dB"]}})  # fmt: skip
    result = run(config, tmp_path / "out", sources=[f"local:{tmp_path / 'products'}"])
    assert result.status == "complete" and result.results[0].patches_written > 0
    item = json.loads(next((tmp_path / "out" / "items").glob("*.json")).read_text())
    assert item["properties"]["sar:instrument_mode"] == MODES[mode].family and item["properties"][
        "sar:polarizations"
    ] == list(pols)
