"""Open the metadata of any Sentinel-2 product senprep reads, whatever its form.

:func:`open_s2_metadata` sends a STAC item ``.json`` file (as written by the COG providers' ``fetch``) to
:func:`senprep_core.s2.cog.read_stac_item_metadata` and everything else (a SAFE folder or zip, its MTD
XML, an AWS tile folder) to :func:`senprep_core.s2.metadata.read_s2_metadata`.
"""

from __future__ import annotations

from pathlib import Path

from senprep_core.s2.cog import read_stac_item_metadata
from senprep_core.s2.metadata import S2Metadata, read_s2_metadata

__all__ = ["open_s2_metadata"]


def open_s2_metadata(path: str | Path) -> S2Metadata:
    """The metadata of the Sentinel-2 product at ``path``: a STAC item ``.json`` file, a SAFE folder or zip
    (or its MTD XML), or an AWS tile folder."""
    p = Path(path)
    if p.suffix.lower() == ".json" and p.is_file():
        return read_stac_item_metadata(p)
    return read_s2_metadata(p)
