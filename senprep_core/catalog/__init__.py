"""Product catalogs behind one interface: ``search(SearchQuery) -> SearchResult``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from senprep_core.catalog.records import ProductProblem, ProductRecord, SearchQuery, SearchResult
from senprep_core.errors import SourceError


class Provider(Protocol):
    """What every provider offers (local folder now; CDSE, Earth Search... later)."""

    name: str

    def search(self, query: SearchQuery) -> SearchResult: ...


def open_provider(source: str) -> Provider:
    """Build a provider from a ``--source`` value: ``local:DIR`` or ``demo``.

    ``demo`` is the embedded synthetic catalog (generated once and cached).
    """
    from senprep_core.catalog.local import LocalProvider

    if source == "demo":
        from senprep_core.demo.catalog import build_demo_catalog, default_demo_folder

        folder = default_demo_folder()
        build_demo_catalog(folder)
        return LocalProvider(folder)
    if source.startswith("local:"):
        return LocalProvider(Path(source[len("local:") :]))
    known = "local:DIR, demo"
    raise SourceError(f"unknown source '{source}': use one of {known} (remote catalogues arrive with a later release)")


__all__ = ["ProductProblem", "ProductRecord", "Provider", "SearchQuery", "SearchResult", "open_provider"]
