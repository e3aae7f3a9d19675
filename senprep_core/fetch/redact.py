"""Keep secrets out of logs, events and error messages.

URLs can carry signatures or tokens in their query string (signed asset hrefs, API keys) and user info
(``user:password@host``); request headers carry ``Authorization``. :func:`redact_url` masks such parts of
one URL, :func:`redact_text` masks them anywhere in free text (an exception message, a log line), and
:func:`install_log_redaction` adds a filter to the loggers of the HTTP libraries (urllib3 logs every
request line, query string included, at DEBUG level).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# query parameter / field names whose values are secret (matched anywhere in the name, case-insensitive)
_SECRET_NAME = re.compile(r"pass|pwd|token|sig|key|secret|auth|credential|session", re.IGNORECASE)
_SECRET_WORDS = r"(?:pass|pwd|token|sig|key|secret|auth|credential|session)"

_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / Authorization: Basic abc
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer\s+|basic\s+)?[^\s'\",}]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{4,}"), rf"\g<1> {MASK}"),
    # user:password@host in URLs
    (re.compile(r"(//[^/\s:@]+:)[^@\s/]+@"), rf"\g<1>{MASK}@"),
    # ?token=..., &sig=..., ;key=...
    (re.compile(rf"(?i)([?&;][^=&\s#]*{_SECRET_WORDS}[^=&\s#]*=)[^&\s#'\"]+"), rf"\g<1>{MASK}"),
    # "password": "...", password=..., 'access_token': '...'
    (
        re.compile(rf"(?i)(\b\w*{_SECRET_WORDS}\w*['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^'\"&\s,}}]+"),
        rf"\g<1>{MASK}",
    ),
)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter, header or form field called ``name`` holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and the values of secret-looking query parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*/:,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with bearer tokens, ``Authorization`` values, URL passwords and secret-looking
    ``name=value`` / ``"name": "value"`` values masked."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of ``headers`` safe to log: secret-looking header values masked."""
    return {k: MASK if is_secret_name(k) or k.lower() == "cookie" else v for k, v in headers.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through :func:`redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the logging machinery
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests")
_installed = False
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Add a :class:`RedactingFilter` to the HTTP libraries' loggers (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(RedactingFilter())
        _installed = True


__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "is_secret_name",
    "redact_headers",
    "redact_text",
    "redact_url",
]
