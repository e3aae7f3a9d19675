"""Run configuration: one frozen :class:`Config`, read from the modern or the legacy form.

Two on-disk forms describe the same :class:`Config`:

- the **modern** form (JSON or YAML) with sections ``grid``, ``patches``, ``sentinel2``,
  ``sentinel1``, ``pairing`` and ``output`` (see ``docs/configuration.md``);
- the **legacy** JSON form of the 2022 Strathclyde senprep tool (``geojson``, ``dates``,
  ``cloudcover``, ``bands_S2``, ``callback_find_products``...), read verbatim by
  :mod:`senprep_core.config.legacy`.

:func:`parse_config` tells them apart, :func:`load_config` reads a file and
:func:`save_config` writes either form atomically (:func:`legacy_dict` gives the legacy form).
Every invalid value raises :class:`~senprep_core.errors.ConfigError` (or a subclass) naming the
key, the value and the fix.

The modules of the package: :mod:`~senprep_core.config.model` (:class:`Mode`,
:class:`OutputOptions`, :class:`Config`), :mod:`~senprep_core.config.values` (single values),
:mod:`~senprep_core.config.s1` (the ``sentinel1`` section, read into
:class:`~senprep_core.s1.options.S1Options`), :mod:`~senprep_core.config.modern` and
:mod:`~senprep_core.config.legacy` (the two forms) and :mod:`~senprep_core.config.io` (the files).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from senprep_core.checks import check_choice
from senprep_core.config.io import read_config_data, write_config_data
from senprep_core.config.legacy import LEGACY_KEYS, legacy_dict, parse_legacy
from senprep_core.config.model import Config, Mode, OutputOptions, unused_settings
from senprep_core.config.modern import MODERN_KEYS, parse_modern
from senprep_core.errors import ConfigError
from senprep_core.s1.options import S1Options
from senprep_core.timeutil import DateWindow

__all__ = [
    "Config",
    "DateWindow",
    "Mode",
    "OutputOptions",
    "S1Options",
    "is_legacy_form",
    "legacy_dict",
    "load_config",
    "parse_config",
    "save_config",
    "unused_settings",
]


def is_legacy_form(data: Mapping[str, Any]) -> bool:
    """True for a 2022-style configuration.

    It has ``geojson``; or it has ``dates`` (or another legacy key such as ``bands_S2``) and
    no key found only in the modern form (``roi``, ``roi_file``, ``mode``, ``sentinel2``...).
    """
    if "geojson" in data:
        return True
    if any(key in data for key in MODERN_KEYS if key not in ("name", "dates")):
        return False
    return any(key in data for key in LEGACY_KEYS if key != "name")


def parse_config(data: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """Validate configuration data (legacy or modern form) into a :class:`Config`.

    ``base_dir`` is where relative paths (``roi_file``, ``local:`` sources) start; usually the
    config file's folder. Raises :class:`ConfigError` naming the key, value and fix.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("config", type(data).__name__, "the configuration must be a mapping of keys to values")
    if is_legacy_form(data):
        return parse_legacy(data, base_dir)
    return parse_modern(data, base_dir)


def load_config(path: str | Path) -> Config:
    """Read a ``.json``, ``.yaml`` or ``.yml`` configuration file (either form); the file is not modified."""
    path = Path(path)
    data = read_config_data(path)
    if not isinstance(data, Mapping):
        raise ConfigError("config", str(path), "the file must hold a mapping of keys to values at its top level")
    return parse_config(data, base_dir=path.resolve().parent)


def save_config(config: Config, path: Path, form: str = "modern") -> None:
    """Write ``config`` in the ``modern`` or ``legacy`` form, atomically (temp file + rename).

    YAML is written for ``.yaml``/``.yml`` paths, JSON otherwise.
    """
    form = check_choice(form, "form", ("modern", "legacy"))
    path = Path(path)
    data = legacy_dict(config) if form == "legacy" else config.to_dict()
    write_config_data(data, path)
