"""The compiled speckle kernels (numba) against the numpy kernels they replace: same values, no-data and edges."""

from __future__ import annotations

import numpy as np
import pytest

from senprep_core.s1 import speckle
from senprep_core.s1.speckle import SpeckleFilter, apply_speckle_filter

COMPILED = ("lee_sigma", "lee", "boxcar", "gamma_map")
RELATIVE = 1e-6  # the kernels add in the same order: they agree to the bit; allow float32 rounding


def scene(seed: int, shape: tuple[int, int] = (300, 257)) -> np.ndarray:
    """Fields x L=1..5 speckle with no-data edges and holes, bright point targets and a 10x step edge."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    field = 0.05 * (1.0 + 0.5 * np.sin(rows / 17.0) * np.cos(cols / 23.0))
    field = np.where(cols > rows + 40, 10.0 * field, field)
    image = (field * rng.gamma(rng.uniform(1.0, 5.0), 1.0, shape)).astype(np.float32)
    image[:, :7] = np.nan
    image[100:104, 50:90] = np.nan
    image[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = np.inf
    image[200:203, 150:153] = 40.0  # a point target
    image[60, 200] = 80.0  # a lone bright pixel
    image[150, 120] = 0.0
    return image


def assert_same(compiled: np.ndarray, reference: np.ndarray) -> None:
    assert compiled.dtype == np.float32 and compiled.shape == reference.shape
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(reference))
    ok = np.isfinite(reference)
    difference = np.abs(compiled[ok].astype(np.float64) - reference[ok]) / np.maximum(np.abs(reference[ok]), 1e-30)
    assert difference.max(initial=0.0) <= RELATIVE, f"max relative difference {difference.max():.3g}"


@pytest.mark.parametrize("looks", [1.0, 4.4])
@pytest.mark.parametrize(
    "params",
    [{"name": "lee_sigma"}, {"name": "lee_sigma", "window": 9, "target_window": 5, "sigma": 0.5},
     {"name": "lee_sigma", "window": 5, "sigma": 0.7}, {"name": "lee"}, {"name": "lee", "window": 7},
     {"name": "boxcar"}, {"name": "boxcar", "window": 3}, {"name": "gamma_map"}, {"name": "gamma_map", "window": 9}],
)  # fmt: skip
def test_compiled_kernels_equal_the_numpy_kernels(params: dict[str, object], looks: float) -> None:
    image = scene(7)
    spec = SpeckleFilter(looks=looks, **params)  # type: ignore[arg-type]
    assert speckle._compiled(spec) is not None
    assert_same(apply_speckle_filter(image, spec), apply_speckle_filter(image, spec, compiled=False))


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_kernels_on_tiny_and_empty_images(name: str) -> None:
    spec = SpeckleFilter(name)
    for image in (np.full((1, 1), 2.0), np.full((3, 2), np.nan), np.array([[1.0, np.nan, 3.0]]), scene(3)[95:100, :40]):
        assert_same(apply_speckle_filter(image, spec), apply_speckle_filter(image, spec, compiled=False))


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_strips_do_not_change_results(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    image = scene(11)
    spec = SpeckleFilter(name, looks=4.4)
    whole = apply_speckle_filter(image, spec)
    monkeypatch.setattr(speckle, "_STRIP_PIXELS", 9 * image.shape[1])
    np.testing.assert_array_equal(apply_speckle_filter(image, spec), whole)


def test_filters_without_a_compiled_kernel_run_numpy() -> None:
    for name in ("median", "refined_lee", "frost", "none"):
        assert speckle._compiled(SpeckleFilter(name)) is None
