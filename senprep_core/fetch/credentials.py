"""Credentials for remote catalogues: a legacy senprep JSON file, environment variables, or ``~/.netrc``.

The password is held in a :class:`Secret` whose text form is always ``***``, so it cannot reach a log
line, an event, an exception message or a sidecar by accident; :meth:`Secret.reveal` gives the value
to the one place that needs it (the token request). Making a :class:`Secret` also registers its value
with :func:`~senprep_core.fetch.redact.register_secret`, so a server echoing it is masked too.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from senprep_core.errors import CredentialsError
from senprep_core.fetch.redact import register_secret

log = logging.getLogger(__name__)

MASK = "***"
#: Hosts looked up in ``~/.netrc`` for CDSE, in order.
CDSE_NETRC_HOSTS = ("identity.dataspace.copernicus.eu", "dataspace.copernicus.eu", "download.dataspace.copernicus.eu")
#: Hosts looked up in ``~/.netrc`` for NASA Earthdata Login (the usual entry of ASF / NASA tools).
EARTHDATA_NETRC_HOSTS = ("urs.earthdata.nasa.gov",)
_HELP = (
    'give --credentials FILE (a JSON file {{"username": ..., "password": ...}}, chmod 600), '
    "set {user_var} and {pass_var}, or add 'machine {host} login USER password PASS' to ~/.netrc"
)


class Secret:
    """A secret string: ``str``, ``repr`` and ``format`` show ``***``; :meth:`reveal` gives the value.

    The value is registered as a known secret of this process (also when a pickled Secret is loaded in
    another process), so wherever it is echoed back it is masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))

    def reveal(self) -> str:
        """The secret value; pass it straight to the request that needs it, never into text."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclass(frozen=True)
class CredentialFiles:
    """The credentials files of a run, one per kind of account; each source reads the one it needs.

    * ``copernicus`` (``--credentials``): the legacy JSON ``{"username", "password"[, "sentinel_url_endpoint"]}``
      of a Copernicus Data Space (``cdse``, ``cdse-stac``) or DHuS (``dhus``) account;
    * ``earthdata`` (``--credentials_earthdata``): ``{"username", "password"}`` of a NASA Earthdata Login
      account (``asf``);
    * ``google`` (``--credentials_google``): a Google Cloud service-account key, an authorized-user file or an
      access token (``gcs``; optional: the public bucket is read anonymously without it).

    Paths only, never secrets: the value travels to worker processes and into cache keys. A source without its
    file falls back to environment variables or ``~/.netrc`` (see :func:`load_credentials`).
    """

    copernicus: str | None = None
    earthdata: str | None = None
    google: str | None = None

    @classmethod
    def of(cls, value: CredentialFiles | str | Path | None) -> CredentialFiles:
        """``value`` as credentials files: a bare path is the Copernicus file (the legacy ``--credentials``)."""
        if isinstance(value, CredentialFiles):
            return value
        return cls(copernicus=str(value) if value is not None else None)

    def given(self) -> dict[str, str]:
        """The files that are set, by kind (for messages and checks)."""
        return {k: v for k, v in (("copernicus", self.copernicus), ("earthdata", self.earthdata),
                                  ("google", self.google)) if v is not None}  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    """A user name and password (a :class:`Secret`), the legacy endpoint if the file gave one, and where
    they came from (``"file <path>"``, ``"environment"``, ``"netrc <path>"``) for messages."""

    username: str
    password: Secret
    endpoint: str | None = None
    source: str = ""


def file_is_private(path: Path) -> bool:
    """True when no one but the owner may read ``path`` (always True on Windows, which has no modes)."""
    if os.name == "nt":
        return True
    return not (path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def warn_if_readable_by_others(path: Path) -> None:
    """Log a warning naming the fix when a credentials file is readable by group or others."""
    if not file_is_private(path):
        mode = stat.S_IMODE(path.stat().st_mode)
        log.warning(
            "credentials file %s is readable by other users (mode %04o); restrict it with `chmod 600 %s`",
            path,
            mode,
            path,
        )


def _text(data: Mapping[str, Any], key: str, path: Path, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise CredentialsError(
                f"credentials file {path} lacks the key '{key}'; "
                'write it as {"username": "...", "password": "..."} (optionally "sentinel_url_endpoint")'
            )
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise CredentialsError(f"credentials file {path}: '{key}' must be a non-empty text value; fix the file")
    return value


def read_credentials_file(path: str | Path) -> Credentials:
    """Read a legacy senprep / sentinelsat credentials JSON file.

    Accepted forms: ``{"username", "password", "sentinel_url_endpoint"}`` (DHuS) and
    ``{"username", "password"}`` (Earthdata). Warns when the file is readable by others.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CredentialsError(f"credentials file {p} does not exist; check the --credentials path")
    warn_if_readable_by_others(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CredentialsError(f"credentials file {p} is not UTF-8 text; save it as a JSON text file") from exc
    except json.JSONDecodeError as exc:
        # the decoder message names a position only, never the file's content
        raise CredentialsError(
            f"credentials file {p} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            'write it as {"username": "...", "password": "..."}'
        ) from None
    except OSError as exc:
        raise CredentialsError(f"credentials file {p} cannot be read ({exc.strerror}); check its permissions") from exc
    if not isinstance(data, dict):
        raise CredentialsError(
            f'credentials file {p} must hold a JSON object {{"username": "...", "password": "..."}}, '
            f"not a {type(data).__name__}"
        )
    username = _text(data, "username", p)
    password = _text(data, "password", p)
    endpoint = _text(data, "sentinel_url_endpoint", p, required=False)
    return Credentials(str(username), Secret(str(password)), endpoint or None, f"file {p}")


def _from_env(env: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> Credentials | None:
    for user_var, pass_var in pairs:
        user, password = env.get(user_var), env.get(pass_var)
        if user and password:
            return Credentials(user, Secret(password), None, f"environment ({user_var})")
        if user or password:
            missing = pass_var if user else user_var
            raise CredentialsError(f"{user_var if user else pass_var} is set but {missing} is not; set both or neither")
    return None


def _netrc_path(env: Mapping[str, str]) -> Path:
    return Path(env["NETRC"]).expanduser() if env.get("NETRC") else Path.home() / ".netrc"


def _from_netrc(path: Path, hosts: Sequence[str]) -> Credentials | None:
    if not path.is_file():
        return None
    try:
        parsed = netrc.netrc(str(path))
    except netrc.NetrcParseError as exc:
        raise CredentialsError(
            f"netrc file {path} is malformed (line {exc.lineno}); fix it or give --credentials FILE"
        ) from None
    except OSError as exc:
        raise CredentialsError(f"netrc file {path} cannot be read ({exc.strerror}); check its permissions") from exc
    for host in hosts:
        entry = parsed.authenticators(host)
        if entry is None:
            continue
        login, _account, password = entry
        if not login or not password:
            raise CredentialsError(f"netrc file {path}: the entry for {host} lacks a login or a password; complete it")
        warn_if_readable_by_others(path)
        return Credentials(login, Secret(password), None, f"netrc {path}")
    return None


def load_credentials(
    path: str | Path | None = None,
    *,
    service: str = "CDSE",
    hosts: Sequence[str] = CDSE_NETRC_HOSTS,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Find credentials: the explicit ``path`` (legacy JSON), else ``SENPREP_<SERVICE>_USERNAME`` /
    ``SENPREP_<SERVICE>_PASSWORD``, else ``SENPREP_USERNAME`` / ``SENPREP_PASSWORD``, else the netrc
    file (``$NETRC`` or ``~/.netrc``) entry of one of ``hosts``.

    Raises :class:`CredentialsError` naming the fix when none is found or a source is malformed.
    """
    if path is not None:
        return read_credentials_file(path)
    environ = os.environ if env is None else env
    prefix = f"SENPREP_{service.upper()}_"
    pairs = [(prefix + "USERNAME", prefix + "PASSWORD"), ("SENPREP_USERNAME", "SENPREP_PASSWORD")]
    found = _from_env(environ, pairs)
    if found is None:
        found = _from_netrc(_netrc_path(environ), hosts)
    if found is None:
        raise CredentialsError(
            f"no {service} credentials found; "
            + _HELP.format(user_var=pairs[0][0], pass_var=pairs[0][1], host=hosts[0] if hosts else "HOST")
        )
    log.debug("%s credentials from %s", service, found.source)
    return found


__all__ = [
    "CDSE_NETRC_HOSTS",
    "EARTHDATA_NETRC_HOSTS",
    "CredentialFiles",
    "Credentials",
    "Secret",
    "file_is_private",
    "load_credentials",
    "read_credentials_file",
    "warn_if_readable_by_others",
]
