"""NASA Earthdata Login (URS) for downloads that redirect through it (ASF's Sentinel-1 archive).

The flow, as ASF and NASA document it: the download URL answers with a redirect to
``https://urs.earthdata.nasa.gov/oauth/authorize?client_id=...&redirect_uri=<app>/login&state=...``;
Earthdata Login checks the user's Basic credentials and redirects back to the application's ``/login``
with a ``code``; the application sets its session cookie (``asf-urs``) and redirects to the file, which
then comes (often through one more redirect to a signed storage URL). The HTTP client's session keeps the
cookie, so later downloads skip the login until the application's session expires: then the same redirect
chain runs again by itself.

:class:`EarthdataAuth` adds the Basic credentials to a request only when it is redirected to an Earthdata
Login server (``https://urs.earthdata.nasa.gov`` and its test servers, or one the caller names, e.g. with
``$SENPREP_EARTHDATA_LOGIN_URL`` for a test server), over https (or on this machine), matching host and port;
the header is dropped again on the way back to the application. The password and the encoded header are
registered as secrets, so an echo is masked.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from senprep_core.fetch.credentials import Credentials
from senprep_core.fetch.redact import register_secret

EARTHDATA_LOGIN_URL = "https://urs.earthdata.nasa.gov"
EARTHDATA_LOGIN_URLS = (EARTHDATA_LOGIN_URL, "https://uat.urs.earthdata.nasa.gov", "https://sit.urs.earthdata.nasa.gov")
#: Another Earthdata Login server to trust (a test server, a mirror's); NASA's own are always trusted.
ENV_LOGIN_URL = "SENPREP_EARTHDATA_LOGIN_URL"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EarthdataAuth:
    """Basic credentials for Earthdata Login, given on redirects to a login server only (HTTP client ``Auth``).

    ``login_urls`` are further login servers to trust (a mirror's, a test server's). The first request to a
    download URL carries no credentials; ``invalidate`` (after a 401) has nothing to renew: the HTTP client
    drops its cookies and the next request logs in again.
    """

    def __init__(self, credentials: Credentials, login_urls: Iterable[str] = ()) -> None:
        self.username = credentials.username
        self.source = credentials.source
        token = base64.b64encode(f"{credentials.username}:{credentials.password.reveal()}".encode()).decode("ascii")
        register_secret(token)
        self._header = {"Authorization": f"Basic {token}"}
        self.servers = frozenset(_origin(u)[1:] for u in (*EARTHDATA_LOGIN_URLS, *login_urls) if u)

    def __repr__(self) -> str:
        return f"EarthdataAuth(user={self.username!r}, servers={sorted(self.servers)})"

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None

    def trusts(self, url: str) -> bool:
        """Whether ``url`` is on an Earthdata Login server (host and port) that may receive the credentials."""
        scheme, host, port = _origin(url)
        secure = scheme == "https" or (scheme == "http" and _loopback(host))
        return secure and (host, port) in self.servers

    def redirect_headers(self, url: str) -> dict[str, str] | None:
        """The Basic credentials for a redirect to a trusted login host, else None."""
        return dict(self._header) if self.trusts(url) else None


__all__ = ["EARTHDATA_LOGIN_URL", "ENV_LOGIN_URL", "EarthdataAuth"]
