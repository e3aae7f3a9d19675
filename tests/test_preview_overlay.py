"""The app's preview overlay state: draft then refined picture, and a newer view's pictures only."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from pyproj import Transformer

from app.state.overlay import DRAFT_FACTOR, OverlayImage, OverlayRequest, OverlayState, paint
from senprep_core.config import parse_config
from senprep_core.errors import PreviewError
from senprep_core.geo.grid import Bounds
from tests.test_preview import found, s2_config_dict

VIEW = Bounds(-4.32, 55.80, -4.16, 55.90)


def _request(demo_products: Path, bounds: Bounds = VIEW) -> OverlayRequest:
    config = parse_config(s2_config_dict())
    return OverlayRequest(config, (found(config, demo_products)[-1],), bounds, screen_px=300)


def test_a_view_gets_a_draft_then_a_refined_picture_over_its_area(demo_products: Path) -> None:
    seen: list[OverlayImage] = []
    state = OverlayState()
    state.param.watch(lambda e: seen.append(e.new), "image")
    generation = state.show(_request(demo_products))
    state.wait()
    assert [i.step for i in seen] == [0, 1] and all(i.generation == generation for i in seen)
    assert seen[0].resolution == DRAFT_FACTOR * seen[1].resolution
    image = state.image
    assert image is seen[-1] and state.status == ""
    assert image.rgba.shape[2] == 4 and (image.rgba[..., 3] == 255).any()
    left, bottom, right, top = image.bounds  # Web Mercator, around the view
    xs, ys = Transformer.from_crs(4326, 3857, always_xy=True).transform([VIEW.left, VIEW.right],
                                                                        [VIEW.bottom, VIEW.top])  # fmt: skip
    assert left <= xs[0] + 100 and right >= xs[1] - 100 and bottom <= ys[0] + 100 and top >= ys[1] - 100


def test_a_view_changed_mid_render_never_shows_the_old_one() -> None:
    release = threading.Event()
    painted: list[tuple[int, int]] = []

    def slow(request: OverlayRequest, resolution: float, generation: int, step: int) -> OverlayImage:
        if generation == 1:
            release.wait(10)  # the first view is still rendering when the second is asked for
        painted.append((generation, step))
        return OverlayImage(generation, step, resolution, np.zeros((1, 1, 4), np.uint8), (0, 0, 1, 1), "x")

    config = parse_config(s2_config_dict())
    state = OverlayState(painter=slow)
    seen: list[OverlayImage] = []
    state.param.watch(lambda e: seen.append(e.new), "image")
    state.show(OverlayRequest(config, (), VIEW))
    second = state.show(OverlayRequest(config, (), Bounds(-4.30, 55.82, -4.20, 55.88)))
    state.wait()
    release.set()
    state.wait()
    assert [(i.generation, i.step) for i in seen] == [(second, 0), (second, 1)]
    assert (1, 1) not in painted  # the superseded view is not refined
    state.clear()
    assert state.image is None


def test_a_preview_error_is_the_status(demo_products: Path) -> None:
    def failing(request: OverlayRequest, resolution: float, generation: int, step: int) -> OverlayImage:
        raise PreviewError("the view is too large")

    state = OverlayState(painter=failing)
    state.show(_request(demo_products))
    state.wait()
    assert state.image is None and state.status == "no preview: the view is too large"


def test_the_real_painter_renders_s1_too(demo_products: Path) -> None:
    from senprep_core.demo.catalog import demo_s1_config_dict

    config = parse_config(demo_s1_config_dict(demo_products))
    image = paint(OverlayRequest(config, (found(config, demo_products)[0],), VIEW, 200, "composite"), 120.0, 7)
    assert image.generation == 7 and image.resolution == 120 and (image.rgba[..., 3] == 255).mean() > 0.1
