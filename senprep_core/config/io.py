"""Reading and writing configuration files: JSON or YAML chosen by the file suffix.

:func:`read_config_data` reports syntax errors with their line and column;
:func:`write_config_data` replaces the file atomically (temp file + rename), so a crash
never leaves a half-written configuration behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from senprep_core.errors import ConfigError

__all__ = ["read_config_data", "write_config_data"]


def read_config_data(path: Path) -> Any:
    """The parsed content of a ``.json``, ``.yaml`` or ``.yml`` file (any JSON/YAML value)."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError("config", str(path), "name the file *.json, *.yaml or *.yml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("config", str(path), "the file does not exist; check the path") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config", str(path), f"the file is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError("config", str(path), f"the file cannot be read ({exc.strerror})") from exc
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                "config", str(path), f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown line"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("config", str(path), f"YAML syntax error at {where}: {problem}") from exc


def write_config_data(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as YAML for ``.yaml``/``.yml`` paths, JSON otherwise, atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
