"""The one HTTP client senprep uses for every remote source.

:class:`HttpClient` owns a pooled ``requests`` session, timeouts and retries (exponential backoff with
full jitter on connection errors, timeouts and dropped bodies, on 408/429/5xx honouring Retry-After),
a per-client limit of requests in flight (a semaphore shared by all threads, e.g. CDSE's 4
connections), a per-account limit shared with other processes (``account``, see
:mod:`senprep_core.fetch.slots`), optional auth headers (on a 401: ``auth.invalidate()`` and one retry
with fresh headers), and verified, resumable, cached downloads (see :meth:`HttpClient.download`).
Secrets never appear in logs, events or exception messages (see :mod:`senprep_core.fetch.redact`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from senprep_core.errors import ChecksumError, ConfigError, CorruptProductError, CredentialsError, DownloadError
from senprep_core.events import BytesProgress, EventCallback, no_op
from senprep_core.fetch.cache import file_lock, is_complete, lock_path, part_path, remove_marker, write_marker
from senprep_core.fetch.checksum import Checksum, new_hasher, zip_problem
from senprep_core.fetch.redact import install_log_redaction, redact_body, registered_secrets, scrub, scrub_url
from senprep_core.fetch.retry import Attempts, Retryable, RetryPolicy, is_retryable_status, parse_retry_after
from senprep_core.fetch.slots import Slots
from senprep_core.fetch.transfer import (
    NETWORK_ERRORS,
    Progress,
    ResumableTransfer,
    TransferOutcome,
    describe_network_error,
    ensure_free_space,
)

log = logging.getLogger(__name__)

USER_AGENT = "senprep/0.1 (+https://github.com/senprep)"
_GENERIC_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu"})
_STATUS_HINTS = {
    400: "the server refused the request as malformed",
    401: "authentication is required: configure credentials for this source",
    403: "access denied: check the account's rights, quota or accepted terms",
    404: "not found: the product or file may have been removed; search again",
    410: "gone: the product was removed; search again",
    416: "the requested byte range was refused",
}


class Auth(Protocol):
    """Gives request headers (e.g. a Bearer token, refreshed when needed); ``invalidate`` after a 401.

    An auth may also offer ``redirect_headers(url) -> dict | None``: headers for a host a request is
    redirected to (NASA Earthdata Login asks for Basic credentials on its own host only, see
    :mod:`senprep_core.fetch.earthdata`)."""

    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class HttpStatusError(DownloadError):
    """The server answered an HTTP error status that is not worth retrying (``status``; ``url`` redacted)."""

    def __init__(self, message: str, *, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


@dataclass(frozen=True)
class DownloadResult:
    """A finished download: final path, size, bytes actually transferred (less than size after a resume),
    whether it came from the cache without any transfer, retries used and seconds."""

    path: Path
    size: int
    bytes_transferred: int
    from_cache: bool
    retries: int
    seconds: float


@dataclass(frozen=True)
class DownloadJob:
    """One file for :meth:`HttpClient.download_many` (the arguments of :meth:`HttpClient.download`)."""

    url: str
    dest: Path
    size: int | None = None
    checksum: Checksum | None = None
    check_zip: bool | None = None
    auth: bool = False
    label: str | None = None


def _same_site(old_host: str | None, new_host: str | None) -> bool:
    """Whether a redirect from ``old_host`` to ``new_host`` stays within the same site (a host or its
    parent domain, e.g. download.dataspace.copernicus.eu -> zipper.dataspace.copernicus.eu)."""
    if not old_host or not new_host:
        return False
    if old_host == new_host:
        return True
    labels = old_host.split(".")
    if len(labels) < 3 or all(part.isdigit() for part in labels):
        return False
    parent = labels[1:]
    if len(parent) == 2 and parent[0] in _GENERIC_SECOND_LEVEL:
        return False
    return new_host.endswith("." + ".".join(parent))


class _Session(requests.Session):
    """A session that keeps the Authorization header on redirects within the same site (CDSE redirects
    downloads between its hosts) and drops it anywhere else, on another port of the same host or on an
    https -> http downgrade. ``redirect_auth(url)`` may add headers for a redirect's target (a login host)."""

    redirect_auth: Callable[[str], Mapping[str, str] | None] | None = None

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        if not super().should_strip_auth(old_url, new_url):
            return False
        old, new = urlsplit(old_url), urlsplit(new_url)
        if old.hostname == new.hostname:  # another port or scheme: another origin on this host
            return True
        downgrade = old.scheme == "https" and new.scheme != "https"
        return downgrade or not _same_site(old.hostname, new.hostname)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if self.redirect_auth is not None and prepared_request.url:
            extra = self.redirect_auth(prepared_request.url)
            if extra:
                prepared_request.headers.update(extra)


class HttpClient:
    """Sessions, timeouts, retries (exponential backoff + jitter; 429 Retry-After; 5xx; dropped
    connections), at most ``max_connections`` requests in flight at once (a per-client semaphore shared
    by all threads), optional ``auth`` headers on requests made with ``auth=True`` (on 401:
    ``auth.invalidate()`` and retry once). Secrets never appear in logs, events or exception messages.

    ``timeout`` is the connect and read timeout in seconds; ``retries`` the consecutive failures
    retried; ``backoff`` / ``max_backoff`` the first and largest backoff ceilings in seconds;
    ``chunk_size`` the read size of downloads; ``user_agent`` the User-Agent header. ``account``: the
    connection slots of the account the credentials belong to, held (besides the client's own) by every
    request made with ``auth=True``, so the processes of a run together stay within the account's limit.
    """

    def __init__(
        self,
        *,
        name: str = "http",
        max_connections: int = 4,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        auth: Auth | None = None,
        on_event: EventCallback = no_op,
        chunk_size: int = 1 << 20,
        user_agent: str = USER_AGENT,
        account: Slots | None = None,
    ) -> None:
        if max_connections < 1:
            raise ConfigError("max_connections", max_connections, "use 1 or more connections")
        self.name = name
        self.max_connections = max_connections
        self.timeout = timeout
        self.policy = RetryPolicy(retries=max(0, retries), backoff=backoff, max_backoff=max_backoff)
        self.auth = auth
        self.on_event = on_event
        self.chunk_size = chunk_size
        self.account = account
        self._slots = threading.BoundedSemaphore(max_connections)
        self._session = self._make_session(user_agent)
        self._session.redirect_auth = getattr(auth, "redirect_headers", None)
        install_log_redaction()

    def _make_session(self, user_agent: str) -> _Session:
        session = _Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.max_connections, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = user_agent
        return session

    def __repr__(self) -> str:
        return f"HttpClient(name={self.name!r}, max_connections={self.max_connections})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    @contextmanager
    def connection_slot(self) -> Iterator[None]:
        """Hold one of the ``max_connections`` slots (blocks while all are in use)."""
        self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = False,
    ) -> requests.Response:
        """Send a request with retries and return the successful response, body loaded.

        Raises HttpStatusError (a DownloadError with ``status``) for a refused request, CredentialsError
        when fresh credentials are refused, DownloadError when the retries are used up.
        """
        shown = self.shown_url(url, params)
        attempts = Attempts(self.policy, f"{self.name}: {method} {shown}")
        while True:
            try:
                with self._attempt(
                    method, url, shown, attempts, use_auth=auth, headers=headers, params=params, data=data
                ) as response:
                    attempts.answered()
                    return response
            except Retryable as error:
                attempts.retry(error)

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        auth: bool = False,
    ) -> requests.Response:
        """GET with retries; the successful response, body loaded."""
        return self.request("GET", url, params=params, headers=headers, auth=auth)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, *, auth: bool = False) -> Any:
        """GET a JSON document (with retries)."""
        response = self.request("GET", url, params=params, headers={"Accept": "application/json"}, auth=auth)
        return self._json(response, self.shown_url(url, params))

    def post_form(self, url: str, data: Mapping[str, str], *, auth: bool = False) -> Any:
        """POST a form, return the JSON answer (token endpoints). The form is never logged."""
        response = self.request("POST", url, data=data, headers={"Accept": "application/json"}, auth=auth)
        return self._json(response, self.shown_url(url))

    def _json(self, response: requests.Response, shown: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise DownloadError(
                f"{self.name}: {shown} did not answer JSON (Content-Type "
                f"{scrub(response.headers.get('Content-Type', 'unknown'))!r}); check the service URL"
            ) from None

    @staticmethod
    def shown_url(url: str, params: Mapping[str, Any] | None = None) -> str:
        """``url`` (with ``params``) as it may appear in logs and messages: secrets masked (secret-looking
        query parameters, user info and every secret this process knows)."""
        if params:
            prepared = requests.Request("GET", url, params=dict(params)).prepare().url
            url = prepared or url
        return scrub_url(url)

    def _headers(self, use_auth: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        """Request headers; the auth headers are fetched here, outside any connection slot, because
        refreshing a token may itself need a request."""
        headers = dict(extra or {})
        if use_auth:
            if self.auth is None:
                raise CredentialsError(f"{self.name}: this request needs credentials but none were configured")
            headers.update(self.auth.headers())
        return headers

    @contextmanager
    def _attempt(
        self,
        method: str,
        url: str,
        shown: str,
        attempts: Attempts,
        *,
        use_auth: bool,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        pass_statuses: tuple[int, ...] = (),
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Iterator[requests.Response]:
        """One attempt holding a connection slot: yields the response once its status was accepted
        (or is in ``pass_statuses``). Raises Retryable for failures worth another attempt."""
        sent = self._headers(use_auth, headers)
        shared = self.account.hold() if use_auth and self.account is not None else nullcontext()
        with self.connection_slot(), shared:
            try:
                response = self._session.request(
                    method, url, params=params, data=data, headers=sent, timeout=self.timeout, stream=stream
                )
            except NETWORK_ERRORS as exc:
                raise Retryable(describe_network_error(exc)) from None
            except requests.RequestException as exc:
                raise DownloadError(
                    f"{self.name}: cannot request {shown}: {describe_network_error(exc)}; check the URL"
                ) from None
            try:
                if response.status_code not in pass_statuses:
                    self._check_status(response, shown, attempts, use_auth, stream)
                yield response
            finally:
                response.close()

    def _check_status(
        self, response: requests.Response, shown: str, attempts: Attempts, use_auth: bool, stream: bool
    ) -> None:
        """Accept 1xx-3xx; retry 401 once with fresh auth; retry 408/429/5xx; refuse other errors."""
        status = response.status_code
        if status < 400:
            return
        if status == 401 and use_auth and self.auth is not None:
            if attempts.auth_retried:
                raise CredentialsError(
                    f"{self.name}: {shown} refused the credentials (HTTP 401) even after a fresh login; "
                    "check the user name and password (or token) for this source"
                )
            attempts.auth_retried = True
            log.info("%s: HTTP 401 from %s; renewing the credentials and retrying once", self.name, shown)
            self.auth.invalidate()
            self._session.cookies.clear()  # a session cookie the server no longer accepts goes too
            raise Retryable("HTTP 401", immediate=True)
        reason = scrub(response.reason or "")  # the reason phrase is the server's text too
        if is_retryable_status(status):
            raise Retryable(
                f"HTTP {status} {reason}", retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        hint = _STATUS_HINTS.get(status, "the server refused the request")
        detail = _body_snippet(response, stream)
        raise HttpStatusError(
            f"{self.name}: {shown} answered HTTP {status} {reason}: {hint}" + (f" ({detail})" if detail else ""),
            status=status,
            url=shown,
        )

    # ------------------------------------------------------------------ downloads

    def download(
        self,
        url: str,
        dest: Path,
        *,
        size: int | None = None,
        checksum: Checksum | None = None,
        check_zip: bool | None = None,
        auth: bool = False,
        label: str | None = None,
    ) -> DownloadResult:
        """Fetch ``url`` to ``dest`` through ``dest.part`` (resumed with Range after a drop), verify size,
        checksum and (``check_zip``; default: dest ends with .zip) zip integrity, then rename atomically.
        A complete ``dest`` is not fetched again. Free disk is checked first (DiskSpaceError).
        Emits BytesProgress events. Another process or thread downloading the same ``dest`` holds
        ``dest.lock``: this call waits for it, then finds the file complete."""
        dest = Path(dest)
        label = label or dest.name
        if checksum is not None:
            new_hasher(checksum.algorithm)  # a missing blake3 package fails here, before any transfer
        zip_check = dest.suffix.lower() == ".zip" if check_zip is None else check_zip
        dest.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with file_lock(lock_path(dest)):
            if is_complete(dest, size, checksum):
                actual = dest.stat().st_size
                log.info("%s: %s is already in the cache", self.name, label)
                self.on_event(BytesProgress(label, actual, actual, 0.0))
                return DownloadResult(dest, actual, 0, True, 0, time.monotonic() - began)
            remove_marker(dest)
            return self._fetch(url, dest, size, checksum, zip_check, auth, label, began)

    def download_many(self, jobs: Sequence[DownloadJob]) -> list[DownloadResult | Exception]:
        """Run ``jobs`` with up to ``max_connections`` downloads at once (threads); the result of each job,
        in order: its DownloadResult or the exception it raised."""
        if not jobs:
            return []

        def run(job: DownloadJob) -> DownloadResult | Exception:
            try:
                return self.download(
                    job.url,
                    job.dest,
                    size=job.size,
                    checksum=job.checksum,
                    check_zip=job.check_zip,
                    auth=job.auth,
                    label=job.label,
                )
            except Exception as exc:
                return exc

        workers = min(len(jobs), self.max_connections)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.name}-download") as pool:
            return list(pool.map(run, jobs))

    def _fetch(
        self,
        url: str,
        dest: Path,
        size: int | None,
        checksum: Checksum | None,
        zip_check: bool,
        use_auth: bool,
        label: str,
        began: float,
    ) -> DownloadResult:
        """Transfer, verify and move into place (the caller holds the lock)."""
        part = part_path(dest)
        shown = self.shown_url(url)
        have = part.stat().st_size if part.exists() else 0
        if size is not None:
            ensure_free_space(dest.parent, max(0, size - have), label)
        attempts = Attempts(self.policy, f"{self.name}: GET {shown}")
        progress = Progress(label, size, self.on_event)
        log.info("%s: downloading %s from %s%s", self.name, label, shown, f" (resuming at byte {have})" if have else "")

        def open_attempt(headers: dict[str, str]) -> AbstractContextManager[requests.Response]:
            return self._attempt(
                "GET", url, shown, attempts, use_auth=use_auth, headers=headers, stream=True, pass_statuses=(416,)
            )

        transfer = ResumableTransfer(
            open_attempt,
            part,
            size=size,
            algorithm=checksum.algorithm if checksum is not None else None,
            attempts=attempts,
            progress=progress,
            chunk_size=self.chunk_size,
            ensure_space=lambda needed: ensure_free_space(dest.parent, needed, label),
        )
        outcome = transfer.run()
        progress.final()
        self._verify(part, outcome, size, checksum, zip_check, label, shown)
        write_marker(dest, outcome.size, checksum)
        os.replace(part, dest)
        seconds = time.monotonic() - began
        log.info(
            "%s: %s done: %d bytes (%d transferred) in %.1f s, %d retries",
            self.name,
            label,
            outcome.size,
            outcome.transferred,
            seconds,
            attempts.retries,
        )
        return DownloadResult(dest, outcome.size, outcome.transferred, False, attempts.retries, seconds)

    def _verify(
        self,
        part: Path,
        outcome: TransferOutcome,
        size: int | None,
        checksum: Checksum | None,
        zip_check: bool,
        label: str,
        shown: str,
    ) -> None:
        """Size, then checksum, then zip integrity; a failing part is deleted."""
        expected = size if size is not None else outcome.total
        if expected is not None and outcome.size != expected:
            _discard(part)
            raise DownloadError(
                f"{label}: received {outcome.size} bytes from {shown} but expected {expected}; "
                "the partial file was discarded. Try again later or another source."
            )
        if checksum is not None and not checksum.matches(outcome.digest or ""):
            _discard(part)
            raise ChecksumError(
                f"{label}: {checksum.algorithm} checksum mismatch (expected {checksum.value}, got {outcome.digest}) "
                f"for {shown}: the server sent a corrupt file, which was discarded. "
                "Try again later or another source."
            )
        if zip_check:
            problem = zip_problem(part)
            if problem is not None:
                _discard(part)
                raise CorruptProductError(
                    f"{label}: {problem}: the server sent a corrupt file ({shown}), which was discarded. "
                    "Try again later or another source."
                )
        with part.open("rb") as f:
            os.fsync(f.fileno())


def _discard(part: Path) -> None:
    with suppress(FileNotFoundError):
        part.unlink()


_READ_LIMIT = 2048
_CUT_WORD = re.compile(r"[^\s\"',;:=&{}\[\]()<>]*\Z")


def _body_snippet(response: requests.Response, stream: bool, limit: int = 200) -> str:
    """The start of an error response's body, secrets masked (whatever its shape: JSON, a form, free text;
    see :func:`~senprep_core.fetch.redact.redact_body`), whitespace collapsed, cut after the masking.
    A body longer than what is read loses its last, partial word (it could be the start of a secret)."""
    try:
        raw = response.raw.read(_READ_LIMIT, decode_content=True) if stream else response.content[:_READ_LIMIT]
    except Exception:
        return ""
    text = raw.decode("utf-8", "replace")
    if len(raw) >= _READ_LIMIT:
        text = _CUT_WORD.sub("", text)
    text = redact_body(text, response.headers.get("Content-Type"), registered_secrets())
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "Auth",
    "Checksum",
    "DownloadJob",
    "DownloadResult",
    "HttpClient",
    "HttpStatusError",
]
