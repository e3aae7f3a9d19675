"""CDSE token authentication (Keycloak OpenID Connect, public client ``cdse-public``).

A password grant gives an access token (about 10 minutes) and a refresh token (about 60 minutes).
:class:`CdseAuth` caches the access token, renews it with the refresh token shortly before it expires
(or after :meth:`CdseAuth.invalidate`, which the HTTP client calls on a 401) and falls back to the
password grant when the refresh token has expired too. Tokens and the password never reach a log
line or an exception message: each token is registered as a known secret of the process the moment it
arrives (:func:`~senprep_core.fetch.redact.register_secret`), so a server echoing it is masked too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from senprep_core.errors import CredentialsError, SenprepError
from senprep_core.fetch.credentials import Credentials
from senprep_core.fetch.http import HttpClient
from senprep_core.fetch.redact import register_secret

log = logging.getLogger(__name__)

CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
CDSE_CLIENT_ID = "cdse-public"


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an HTTP-client error carries (``status`` / ``status_code`` / ``response``), if any."""
    for name in ("status", "status_code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


class CdseAuth:
    """Bearer-token auth for CDSE downloads; thread-safe; implements the HTTP client's ``Auth`` protocol.

    ``token_url`` is overridable (test servers); ``refresh_margin`` is how many seconds before expiry a
    token is renewed (at most a quarter of its lifetime); ``http`` is the client used for the token
    requests (a private one without auth by default); ``clock`` returns monotonic seconds.
    """

    def __init__(
        self,
        credentials: Credentials,
        token_url: str = CDSE_TOKEN_URL,
        *,
        client_id: str = CDSE_CLIENT_ID,
        refresh_margin: float = 30.0,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self.token_url = token_url
        self.client_id = client_id
        self.refresh_margin = refresh_margin
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._access_expiry = 0.0
        self._refresh: str | None = None
        self._refresh_expiry = 0.0
        self.grants: dict[str, int] = {"password": 0, "refresh_token": 0}

    def __repr__(self) -> str:
        return f"CdseAuth(user={self._credentials.username!r}, token_url={self.token_url!r})"

    @property
    def username(self) -> str:
        """The account's user name (not a secret; keys its connection slots)."""
        return self._credentials.username

    # ------------------------------------------------------------------ Auth protocol

    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <access token>"}``, renewing the token when it is (nearly) expired."""
        return {"Authorization": f"Bearer {self.access_token()}"}

    def invalidate(self) -> None:
        """Forget the access token (the server refused it); the next request renews it."""
        with self._lock:
            self._access = None
            self._access_expiry = 0.0

    # ------------------------------------------------------------------ tokens

    def access_token(self) -> str:
        """A valid access token (cached; renewed through the refresh or the password grant)."""
        with self._lock:
            now = self._clock()
            if self._access is not None and now < self._access_expiry:
                return self._access
            if self._refresh is not None and now < self._refresh_expiry:
                try:
                    self._store(self._grant("refresh_token", {"refresh_token": self._refresh}), now)
                    return self._require_access()
                except CredentialsError:
                    log.info("CDSE refresh token refused; requesting a new token with the password")
            self._store(
                self._grant(
                    "password",
                    {"username": self._credentials.username, "password": self._credentials.password.reveal()},
                ),
                now,
            )
            return self._require_access()

    def _require_access(self) -> str:
        if self._access is None:  # pragma: no cover - _store sets it or raises
            raise CredentialsError("the CDSE token endpoint gave no access token; try again later")
        return self._access

    def _client(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(name="cdse-token", max_connections=2, timeout=30.0, retries=3)
        return self._http

    def _grant(self, grant_type: str, fields: Mapping[str, str]) -> Mapping[str, Any]:
        data = {"grant_type": grant_type, "client_id": self.client_id, **fields}
        self.grants[grant_type] = self.grants.get(grant_type, 0) + 1
        try:
            answer = self._client().post_form(self.token_url, data)
        except SenprepError as exc:
            status = _status_of(exc)
            if status in (400, 401, 403):
                if grant_type == "refresh_token":
                    raise CredentialsError("the CDSE refresh token was refused") from None
                raise CredentialsError(
                    f"CDSE rejected the user name or password from {self._credentials.source or 'the credentials'} "
                    f"(HTTP {status}); check them at https://dataspace.copernicus.eu "
                    "(log in there once to accept the terms) and fix the credentials file, variables or netrc"
                ) from None
            raise
        if not isinstance(answer, Mapping) or not isinstance(answer.get("access_token"), str):
            raise CredentialsError(
                f"the CDSE token endpoint {self.token_url} gave no access token; check the token URL"
            )
        log.debug("CDSE %s grant: new access token", grant_type)
        return answer

    def _store(self, answer: Mapping[str, Any], now: float) -> None:
        for name in ("access_token", "refresh_token", "id_token"):
            register_secret(answer.get(name))  # before anything can echo them
        lifetime = float(answer.get("expires_in") or 600.0)
        margin = min(self.refresh_margin, lifetime / 4.0)
        self._access = str(answer["access_token"])
        self._access_expiry = now + lifetime - margin
        refresh = answer.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            refresh_life = float(answer.get("refresh_expires_in") or 3600.0)
            self._refresh = refresh
            self._refresh_expiry = now + refresh_life - min(self.refresh_margin, refresh_life / 4.0)
        else:
            self._refresh, self._refresh_expiry = None, 0.0


__all__ = ["CDSE_CLIENT_ID", "CDSE_TOKEN_URL", "CdseAuth"]
