"""Sentinel-1 GRD support: product metadata, measurement windows and orbit files."""

from __future__ import annotations

from senprep_core.s1.measurement import clip_window, read_dn
from senprep_core.s1.metadata import read_s1_metadata
from senprep_core.s1.orbit_files import find_orbit_file, read_orbit_file, select_orbit

__all__ = [
    "clip_window",
    "find_orbit_file",
    "read_dn",
    "read_orbit_file",
    "read_s1_metadata",
    "select_orbit",
]
