"""When and how long to wait before retrying a request: exponential backoff with full jitter, Retry-After."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from senprep_core.errors import DownloadError

log = logging.getLogger(__name__)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 429 and the transient 5xx (not 501 / 505)."""
    return status in (408, 429) or (500 <= status < 600 and status not in (501, 505))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now if now is not None else datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` consecutive failures are retried; the n-th waits a random time in
    [0, min(max_backoff, backoff * 2**(n-1))] ("full jitter"), or the server's Retry-After
    (capped at ``max_backoff``)."""

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, failure: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retrying after the ``failure``-th consecutive failure."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2 ** max(0, failure - 1))
        return random.uniform(0.0, ceiling)


class Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying (never escapes the HTTP client)."""

    def __init__(self, reason: str, *, retry_after: float | None = None, immediate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.immediate = immediate  # retry at once without counting a failure (after a 401 + fresh token)


class Attempts:
    """The retry state of one logical request: consecutive failures, total retries, the 401 retry flag."""

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.what = what  # e.g. "cdse: https://host/path" (already redacted)
        self.failures = 0
        self.retries = 0
        self.auth_retried = False
        self._sleep = sleep

    def retry(self, error: Retryable) -> None:
        """Wait before the next attempt, or raise DownloadError when the retries are used up."""
        if error.immediate:
            self.retries += 1
            return
        self.failures += 1
        if self.failures > self.policy.retries:
            raise DownloadError(
                f"{self.what}: gave up after {self.failures} attempts, the last one failed with: {error.reason}. "
                "Check the network connection or try again later."
            )
        self.retries += 1
        delay = self.policy.delay(self.failures, error.retry_after)
        log.warning("%s: %s; retry %d/%d in %.1f s", self.what, error.reason, self.failures, self.policy.retries, delay)
        self._sleep(delay)

    def progressed(self) -> None:
        """Bytes arrived: the next failure counts as the first again (long downloads survive many drops)."""
        self.failures = 0

    def answered(self) -> None:
        """The server accepted the request: a later 401 may again trigger one token refresh."""
        self.auth_retried = False


__all__ = ["Attempts", "RetryPolicy", "Retryable", "is_retryable_status", "parse_retry_after"]
