"""senprep: Sentinel-1 / Sentinel-2 analysis-ready data for researchers.

The library never imports a UI toolkit. Entry points:

- :func:`senprep_core.config.load_config` reads a legacy or modern configuration;
- :func:`senprep_core.pipeline.run` plans and runs a configuration;
- :func:`senprep_core.preview` shows what a run would make of a product or pair over an area, in about a second
  (:mod:`senprep_core.previews`);
- :mod:`senprep_core.demo` builds synthetic products with known ground truth.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("senprep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "preview"]


def __getattr__(name: str) -> Any:
    """``senprep_core.preview``, loaded when first used (``import senprep_core`` stays light, and the modules
    that read ``__version__`` from here do not import the preview chain back)."""
    if name == "preview":
        return import_module("senprep_core.previews").preview
    raise AttributeError(f"module 'senprep_core' has no attribute {name!r}")
