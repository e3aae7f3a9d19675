"""The acquisition modes a synthetic Sentinel-1 GRD can be made in, and what each changes in its files.

Every mode is simulated with the same forward model (:mod:`senprep_core.demo.s1`); they differ in what the
annotation says and in the product's usual spacing and looks (Sentinel-1 product definition, GRD table):

- ``IW`` (GRDH, 10 m, ENL 4.4): one merged ``IW`` image; the demo cut keeps sub-swath ``IW2`` only;
- ``EW`` (GRDM, 40 m, ENL 10.7): five sub-swaths ``EW1`` .. ``EW5`` side by side in range, each with its own
  azimuth noise block, ``swathMerge`` bounds and processing parameters; HH/HV or VV/VH;
- stripmap ``S1`` .. ``S6`` (GRDH, 10 m, ENL 34.4): one swath named like the beam, ``adsHeader/mode`` ``SM``
  and ``adsHeader/swath`` the beam; file names ``s1a-s3-grd-vv-...``; product names ``S1A_S3_GRDH_...``.

Pure values: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MODES", "DemoMode", "demo_mode", "split_subswaths"]


@dataclass(frozen=True)
class DemoMode:
    """What one acquisition mode writes: names, sub-swaths and its usual spacing, looks and incidence."""

    name: str  #: "IW", "EW" or "S1".."S6": the product name's mode field and ``adsHeader/swath``
    family: str  #: "IW", "EW" or "SM": ``adsHeader/mode`` and the manifest's instrument mode
    resolution: str  #: "H" or "M": the product name's resolution class
    subswaths: tuple[str, ...]  #: the swaths of the image's noise blocks, range order
    pixel_spacing: float  #: m, ground range and azimuth
    looks: float  #: equivalent number of looks of the product
    incidence_near: float  #: degrees, near edge of the simulated cut

    @property
    def description(self) -> str:
        """The measurement TIFF's image description, e.g. ``IW GRD HR L1``."""
        return f"{self.family} GRD {self.resolution}R L1"


MODES: dict[str, DemoMode] = {
    "IW": DemoMode("IW", "IW", "H", ("IW2",), 10.0, 4.4, 35.0),
    "EW": DemoMode("EW", "EW", "M", ("EW1", "EW2", "EW3", "EW4", "EW5"), 40.0, 10.7, 20.0),
    **{
        f"S{k}": DemoMode(f"S{k}", "SM", "H", (f"S{k}",), 10.0, 34.4, inc)
        for k, inc in zip(range(1, 7), (19.0, 24.0, 31.0, 36.0, 39.5, 42.5), strict=True)
    },
}


def demo_mode(name: str) -> DemoMode:
    """The :class:`DemoMode` of ``name`` (``IW``, ``EW``, ``S1`` .. ``S6``); KeyError for another."""
    return MODES[name.upper()]


def split_subswaths(mode: DemoMode, samples: int) -> list[tuple[str, int, int]]:
    """(swath, first pixel, last pixel) of each sub-swath of an image ``samples`` wide: equal parts in range."""
    edges = np.linspace(0, samples, len(mode.subswaths) + 1).round().astype(int)
    return [(s, int(edges[i]), int(edges[i + 1]) - 1) for i, s in enumerate(mode.subswaths)]
