"""Google Cloud credentials for Cloud Storage reads (``--credentials_google``), as Google's client libraries
read them, with tokens obtained through senprep's one HTTP client.

A credentials file is one of (https://google.aip.dev/auth/4112, https://google.aip.dev/auth/4113):

* a **service-account key** (``"type": "service_account"``, ``client_email``, ``private_key``,
  ``token_uri``): a JWT signed with the key (RS256) is exchanged at ``token_uri`` for an access token
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``; RFC 7523). Signing needs the optional
  ``cryptography`` package (``pip install 'senprep[gcs]'``);
* an **authorized-user** file (``"type": "authorized_user"``, ``client_id``, ``client_secret``,
  ``refresh_token``), as ``gcloud auth application-default login`` writes it: a refresh-token grant;
* an **access token**: ``{"access_token": "..."}`` (or ``"token"``), used as it is.

Access tokens are renewed a minute before they expire, or after a 401. The key, the refresh token, the
client secret and every token are registered as secrets (masked wherever they are echoed).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from senprep_core.errors import CredentialsError, SenprepError
from senprep_core.fetch.credentials import warn_if_readable_by_others
from senprep_core.fetch.http import HttpClient
from senprep_core.fetch.redact import register_secret

log = logging.getLogger(__name__)

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
STORAGE_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_MARGIN = 60.0  # seconds before expiry a token is renewed
_HELP = (
    "give --credentials_google a service-account key (JSON from the Cloud console), an authorized-user file "
    '(gcloud auth application-default login) or {"access_token": "..."}; the public bucket needs none'
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(claims: Mapping[str, Any], private_key_pem: str, key_id: str | None = None) -> str:
    """An RS256 JSON Web Token of ``claims`` signed with a PEM RSA key (needs ``cryptography``)."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:
        raise CredentialsError(
            "a Google service-account key needs the optional 'cryptography' package to sign its token requests: "
            "pip install 'senprep[gcs]' (or pip install cryptography)"
        ) from None
    header = {"alg": "RS256", "typ": "JWT", **({"kid": key_id} if key_id else {})}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(dict(claims)).encode())}"
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(f"the service-account key's private_key is not a PEM RSA key ({type(exc).__name__}); "
                               "download a new JSON key from the Cloud console") from None  # fmt: skip
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError("the service-account key's private_key is not an RSA key; download a new JSON key")
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


class GoogleAuth:
    """Bearer tokens for Google Cloud Storage from a credentials file (HTTP client ``Auth``; thread-safe).

    ``http`` sends the token requests (a private client by default); ``clock`` gives wall-clock seconds.
    """

    def __init__(
        self,
        info: Mapping[str, Any],
        source: str = "",
        *,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kind = str(info.get("type") or ("token" if info.get("access_token") or info.get("token") else ""))
        self.source = source
        self._info = dict(info)
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expiry = 0.0
        for name in ("private_key", "client_secret", "refresh_token", "access_token", "token"):
            register_secret(info.get(name))
        if self.kind == "service_account":
            missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        elif self.kind == "authorized_user":
            missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
        elif self.kind == "token":
            missing = []
            self._token, self._expiry = str(info.get("access_token") or info.get("token")), float("inf")
        else:
            raise CredentialsError(f"Google credentials {source or 'file'} is of unknown type {self.kind!r}; {_HELP}")
        if missing:
            raise CredentialsError(f"Google credentials {source} ({self.kind}) lack {', '.join(missing)}; {_HELP}")

    def __repr__(self) -> str:
        return f"GoogleAuth(kind={self.kind!r}, source={self.source!r})"

    @property
    def account(self) -> str:
        """Who the credentials are (not a secret)."""
        return str(self._info.get("client_email") or self._info.get("client_id") or "token")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        with self._lock:
            if self.kind != "token":
                self._token, self._expiry = None, 0.0

    def token(self) -> str:
        """A valid access token, requested or renewed when needed."""
        with self._lock:
            if self._token is not None and self._clock() < self._expiry - _MARGIN:
                return self._token
            if self.kind == "token":  # a given token cannot be renewed
                raise CredentialsError(f"the Google access token of {self.source} was refused or expired; {_HELP}")
            answer = self._grant()
            token = answer.get("access_token")
            if not isinstance(token, str) or not token:
                raise CredentialsError(f"the Google token endpoint gave no access token for {self.source}; {_HELP}")
            register_secret(token)
            self._token = token
            self._expiry = self._clock() + float(answer.get("expires_in") or 3600)
            return token

    def _grant(self) -> Mapping[str, Any]:
        info = self._info
        uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)
        if self.kind == "service_account":
            now = int(self._clock())
            claims = {"iss": info["client_email"], "scope": STORAGE_READ_SCOPE, "aud": uri, "iat": now,
                      "exp": now + 3600}  # fmt: skip
            form = {"grant_type": JWT_BEARER, "assertion": sign_jwt(claims, str(info["private_key"]),
                                                                    info.get("private_key_id"))}  # fmt: skip
        else:
            form = {"grant_type": "refresh_token", "client_id": str(info["client_id"])}
            form |= {"client_secret": str(info["client_secret"]), "refresh_token": str(info["refresh_token"])}
        if self._http is None:
            self._http = HttpClient(name="google-token", max_connections=2, timeout=30.0, retries=3)
        try:
            answer = self._http.post_form(uri, form)
        except SenprepError as exc:
            status = getattr(exc, "status", None)
            if status in (400, 401, 403):
                raise CredentialsError(
                    f"Google refused the credentials of {self.source} (HTTP {status}); {_HELP}"
                ) from None
            raise
        if not isinstance(answer, Mapping):
            raise CredentialsError(f"the Google token endpoint {uri} did not answer a JSON object; check token_uri")
        log.debug("Google %s token granted", self.kind)
        return answer


def read_google_credentials(path: str | Path, *, http: HttpClient | None = None) -> GoogleAuth:
    """The :class:`GoogleAuth` of a credentials file (see the module docstring); warns when others may read it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CredentialsError(f"Google credentials file {p} does not exist; check the --credentials_google path")
    warn_if_readable_by_others(p)
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CredentialsError(f"Google credentials file {p} is not a JSON document; {_HELP}") from None
    if not isinstance(info, dict):
        raise CredentialsError(f"Google credentials file {p} must hold a JSON object; {_HELP}")
    return GoogleAuth(info, f"file {p}", http=http)


__all__ = ["GOOGLE_TOKEN_URI", "STORAGE_READ_SCOPE", "GoogleAuth", "read_google_credentials", "sign_jwt"]
