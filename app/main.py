"""Minimal senprep app: run the embedded demo in the background and show its patches.

Served with ``panel serve app`` (``make run``). The full app (ROI drawing, search preview,
parameters, gallery) builds on the same state classes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import panel as pn
import rasterio
from PIL import Image

from app.state import DemoJob

pn.extension(sizing_mode="stretch_width")


def true_colour_png(path: str, size: int = 160) -> bytes:
    """A small PNG of a patch: true colour for S2 (B04/B03/B02), else the first band stretched 2-98 %."""
    with rasterio.open(path) as src:
        names = list(src.descriptions)
        wanted = [names.index(b) + 1 for b in ("B04", "B03", "B02") if b in names]
        rgb = src.read(wanted or [1, 1, 1], out_shape=(len(wanted) or 3, size, size)).astype("float32")
    if wanted:
        rgb = np.clip(rgb / 0.3, 0, 1)
    else:  # backscatter (often dB) or another single layer
        finite = rgb[np.isfinite(rgb)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        rgb = np.clip((rgb - low) / max(float(high - low), 1e-6), 0, 1)
    rgb = np.nan_to_num(rgb) * 255
    image = Image.fromarray(np.moveaxis(rgb.astype("uint8"), 0, -1))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_app(job: DemoJob | None = None) -> pn.template.FastListTemplate:
    """The app layout bound to one session's job."""
    job = job or DemoJob()
    run_button = pn.widgets.Button(name="Run demo", button_type="primary")
    cancel_button = pn.widgets.Button(name="Cancel", button_type="warning")
    progress = pn.indicators.Progress(value=0, max=1, bar_color="primary")
    status = pn.pane.Markdown(
        "Press **Run demo** to generate synthetic Sentinel-2 and Sentinel-1 products and cut patches."
    )
    gallery = pn.GridBox(ncols=4)
    shown: set[str] = set()

    def refresh() -> None:
        progress.max = max(job.units_total, 1)
        progress.value = job.units_done
        text = f"**Status:** {job.status} — {job.units_done}/{job.units_total} products, {len(job.patches)} patches"
        if job.error:
            text += f"\n\n**Error:** {job.error}"
        status.object = text
        for path in job.patches:
            if path not in shown and Path(path).exists():
                shown.add(path)
                date = Path(path).parent.name.split("_")[2][:8]
                caption = f"{date} {Path(path).stem}"
                gallery.append(pn.Column(pn.pane.PNG(true_colour_png(path), width=160), caption))

    run_button.on_click(lambda _event: job.start())
    cancel_button.on_click(lambda _event: job.cancel())
    callback = pn.state.add_periodic_callback(refresh, period=500)
    pn.state.on_session_destroyed(lambda _ctx: (callback.stop(), job.cancel()))
    template = pn.template.FastListTemplate(title="senprep — demo", sidebar=[run_button, cancel_button, progress])
    template.main.append(pn.Column(status, gallery))
    return template


if __name__.startswith("bokeh"):
    build_app().servable()
