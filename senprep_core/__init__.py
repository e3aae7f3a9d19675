"""senprep: Sentinel-1 / Sentinel-2 analysis-ready data for researchers.

The library never imports a UI toolkit. Entry points:

- :func:`senprep_core.config.load_config` reads a legacy or modern configuration;
- :func:`senprep_core.pipeline.run` plans and runs a configuration;
- :mod:`senprep_core.demo` builds synthetic products with known ground truth.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("senprep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
