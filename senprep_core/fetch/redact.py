"""Keep secrets out of logs, events, error messages and run reports.

Two mechanisms work together:

* **Patterns** mask values that are secret because of where they stand, whatever the text's shape:
  JSON (objects, lists, nested, also JSON held in a JSON string), Python reprs, form-encoded bodies
  (``username=u&password=p``), URLs (``user:password@host``, ``?token=...``, ``X-Amz-Signature=...``, also
  URL-encoded inside another URL), header lines (``Authorization: Bearer ...``, ``Cookie: ...``),
  ``[name, value]`` pairs, ``{"name": "password", "value": ...}`` fields, free-standing ``Bearer``
  tokens and JWTs. A name is secret when :func:`is_secret_name` says so (password, client_secret,
  access_token, refresh_token, token, authorization, api keys, signatures, cookies...).
* **Known secrets**: every password and token senprep learns is registered in this process's
  :data:`SECRETS` registry (:func:`register_secret`) the moment it is learned, and masked wherever it is
  echoed, free text included, in its plain, URL-encoded, JSON-escaped and HTML-escaped forms.

The functions ``redact_*`` and :func:`mask_known` are pure: the known secrets are a parameter.
:func:`scrub` (patterns and this process's registry) and :func:`scrub_known` (the registry only, for text
senprep wrote itself) are what senprep calls where a message is made. :func:`install_log_redaction`
makes every log record of the process go through them (see :func:`redact_record`). The registry lives per
process: a worker process learns its own token when it logs in, and registers it then.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"
#: Shorter values are not registered: masking every occurrence of two or three characters would maim messages.
MIN_SECRET_LENGTH = 4

# ---------------------------------------------------------------------------------------------- secret names

# a name holding one of these anywhere (separators ignored) is secret
_STRONG_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "signature",
    "credential",
    "cookie",
    "authorization",
    "apikey",
    "accesskey",
    "privatekey",
    "sessionid",
    "sessid",
)
# a name with one of these as a whole word (``user_pass``, ``sig``, ``X-Auth``) is secret
_WEAK_WORDS = frozenset({"pass", "pwd", "pw", "sig", "auth", "session", "jwt", "sas"})
# ``key`` alone, or after one of these (``api_key``, ``Subscription-Key``), is secret; ``KeyError`` is not
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "subscription", "account", "signing", "client", "master", "app",
     "auth", "shared", "session", "encryption", "sas", "storage"}
)  # fmt: skip
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a field, query parameter, header or cookie called ``name`` holds a secret."""
    compact = _NOT_ALNUM.sub("", name.lower())
    if not compact:
        return False
    if any(word in compact for word in _STRONG_WORDS):
        return True
    words = [w.lower() for w in _WORD.findall(name)]
    if any(w in _WEAK_WORDS for w in words):
        return True
    for i, word in enumerate(words):
        if word in ("key", "keys") and (len(words) == 1 or (i > 0 and words[i - 1] in _KEY_QUALIFIERS)):
            return True
    return False


# ---------------------------------------------------------------------------------------------- known secrets


def secret_variants(secret: str) -> frozenset[str]:
    """The forms in which ``secret`` may be echoed: as is, URL-encoded (path / query / form), JSON-escaped,
    Python-repr-escaped and HTML-escaped. Forms shorter than :data:`MIN_SECRET_LENGTH` are left out."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        html.escape(secret),
    }
    return frozenset(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


@functools.lru_cache(maxsize=64)
def _known_pattern(known: frozenset[str]) -> re.Pattern[str] | None:
    variants: set[str] = set()
    for secret in known:
        if len(secret) >= MIN_SECRET_LENGTH:
            variants |= secret_variants(secret)
    if not variants:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(variants, key=lambda v: (-len(v), v))))


def mask_known(text: str, known: Iterable[str]) -> str:
    """``text`` with every occurrence of a ``known`` secret (in any form of :func:`secret_variants`) masked."""
    pattern = _known_pattern(known if isinstance(known, frozenset) else frozenset(known))
    return text if pattern is None or not text else pattern.sub(MASK, text)


# ---------------------------------------------------------------------------------------------- free text

# ``name`` then ``:`` / ``=`` / ``%3D``; the name may be quoted (also ``\"name\"`` inside a JSON string) and
# may follow a URL-encoded character (``%3Ftoken%3D...`` in a URL held in another URL's query)
_ASSIGNMENT = re.compile(
    r"(?:(?<![\w$.\\-])|(?<=%[0-9A-Fa-f]{2}))(?P<q>\\?[\"']|)(?P<name>[A-Za-z_$][\w.$-]{0,80})(?P=q)"
    r"[ \t]*(?P<sep>:(?!//)|=(?!=)|%3[dD])\s*"
)
# ``["password", ...]`` / ``('password', ...)``: one (name, value) pair of a form given as a list
_PAIR = re.compile(r"[\[(]\s*(?P<q>\\?[\"'])(?P<name>[\w.$-]{1,80})(?P=q)\s*,\s*")
# ``{"name": "password", "value": ...}``: a field described by name and value
_NAMED_FIELD = re.compile(
    r"(?P<q1>\\?[\"'])(?:name|key|field|param|parameter|header)(?P=q1)\s*[:=]\s*(?P<q>\\?[\"'])(?P<name>[\w.$-]{1,80})"
    r"(?P=q)\s*,\s*(?P<q3>\\?[\"'])(?:value|values|val)(?P=q3)\s*[:=]\s*",
    re.IGNORECASE,
)
_SCHEME = r"(?P<scheme>(?:bearer|basic|digest|token|negotiate|ntlm|aws4-hmac-sha256)[ \t]+|)"
_BARE_VALUE = re.compile(_SCHEME + r"(?P<value>[^\s&,;?#}\])\"'<>]+)", re.IGNORECASE)
_ENCODED_VALUE = re.compile(r"(?P<scheme>)(?P<value>(?:(?!%26|%23)[^\s&,;?#}\])\"'<>])+)", re.IGNORECASE)
_LINE_VALUE = re.compile(r"(?P<scheme>)(?P<value>[^\r\n\"']+)")
_USERINFO = re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"<>]*:)(?P<pw>[^@\s/'\"<>]+)@")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>[Bb]earer|BEARER|[Bb]asic|BASIC)(?P<sp>[ \t]+)(?P<tok>[A-Za-z0-9._~+/-]+=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_CAPS_WORD = re.compile(r"[A-Z]+")
_KEEP_WORDS = frozenset({"true", "false", "null", "none", "True", "False", "None", ""})


def _is_string_start(text: str, i: int) -> bool:
    return text[i] in "\"'" or text.startswith('\\"', i)


def _string_end(text: str, i: int) -> tuple[str, int]:
    """The opener of the string starting at ``i`` (a quote, or ``\\"`` inside a JSON string) and the index
    just past its closing quote (-1 when the text ends first)."""
    if text.startswith('\\"', i):
        close = text.find('\\"', i + 2)
        return '\\"', -1 if close < 0 else close + 2
    quote_char = text[i]
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote_char:
            return quote_char, j + 1
        j += 1
    return quote_char, -1


def _closing_bracket(text: str, start: int) -> int:
    """Index of the bracket closing the ``[`` / ``{`` at ``start`` (strings skipped), or -1."""
    depth = 0
    i = start
    while i < len(text):
        if _is_string_start(text, i):
            _, end = _string_end(text, i)
            if end < 0:
                return -1
            i = end
            continue
        if text[i] in "[{":
            depth += 1
        elif text[i] in "]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _followed_by_colon(text: str, i: int) -> bool:
    while i < len(text) and text[i].isspace():
        i += 1
    return i < len(text) and text[i] == ":"


def _mask_all_values(region: str) -> str:
    """A JSON-like ``[...]`` / ``{...}`` region with every value masked and its keys and structure kept."""
    out: list[str] = []
    i, n = 0, len(region)
    while i < n:
        if _is_string_start(region, i):
            opener, end = _string_end(region, i)
            if end >= 0 and _followed_by_colon(region, end):
                out.append(region[i:end])  # a key
            else:
                out.append(opener + MASK + (opener if end >= 0 else ""))
            i = n if end < 0 else end
            continue
        char = region[i]
        if char in "[]{},:" or char.isspace():
            out.append(char)
            i += 1
            continue
        j = i
        while j < n and region[j] not in "[]{},:" and not region[j].isspace() and not _is_string_start(region, j):
            j += 1
        word = region[i:j]
        out.append(word if word in _KEEP_WORDS or _followed_by_colon(region, j) else MASK)
        i = j
    return "".join(out)


def _mask_value(text: str, start: int, name: str, sep: str, quoted: bool) -> tuple[int, str]:
    """Mask the value starting at ``start`` (after ``name`` and its separator): returns (end, replacement)."""
    if start >= len(text):
        return start, ""
    if _is_string_start(text, start):
        opener, end = _string_end(text, start)
        return (len(text), opener + MASK) if end < 0 else (end, opener + MASK + opener)
    char = text[start]
    if char in "[{":
        close = _closing_bracket(text, start)
        end = len(text) if close < 0 else close + 1
        return end, _mask_all_values(text[start:end])
    if sep.lower() == "%3d":
        pattern = _ENCODED_VALUE
    elif "cookie" in name.lower() and sep == ":" and not quoted:
        pattern = _LINE_VALUE  # Cookie / Set-Cookie header: every pair of the line
    else:
        pattern = _BARE_VALUE
    m = pattern.match(text, start)
    if m is None or not m.group("value"):
        return start, ""
    value = m.group("value")
    if not m.group("scheme"):
        if value.lower() in ("null", "none"):
            return m.end(), value
        if pattern is _BARE_VALUE and _URL_START.match(value):
            return start, ""  # a URL names where, not the secret (its own secrets are masked on the way)
        if sep == ":" and not quoted and _CAPS_WORD.fullmatch(value):
            return start, ""  # "cdse-token: POST https://...": a client's name, then a method, not a header
    return m.end(), m.group("scheme") + MASK


def _mask_after(pattern: re.Pattern[str], text: str) -> str:
    """Mask the value after every match of ``pattern`` whose ``name`` group is a secret name."""
    out: list[str] = []
    pos = 0
    while True:
        m = pattern.search(text, pos)
        if m is None:
            break
        name = m.group("name")
        sep = m.groupdict().get("sep") or ":"
        path_end = sep == ":" and m.start() > 0 and text[m.start() - 1] == "/"  # ".../token: gave up": prose
        if not is_secret_name(name) or path_end:
            out.append(text[pos : m.end()])
            pos = m.end()
            continue
        end, masked = _mask_value(text, m.end(), name, sep, bool(m.group("q")))
        out.append(text[pos : m.end()])
        out.append(masked)
        pos = max(end, m.end())
    out.append(text[pos:])
    return "".join(out)


def _auth_scheme(m: re.Match[str]) -> str:
    token = m.group("tok")
    looks_secret = len(token) >= 20 or (len(token) >= 8 and bool(re.search(r"[\d._~+/=-]", token)))
    if token == MASK or not looks_secret:
        return m.group(0)
    return f"{m.group('scheme')}{m.group('sp')}{MASK}"


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` (any shape: free text, JSON, a form body, URLs, header lines, reprs) with secret values masked:
    the ``known`` secrets wherever they appear, then every value that a secret name announces, URL
    passwords, ``Bearer`` / ``Basic`` credentials and JWTs."""
    if not text:
        return text
    text = mask_known(text, known)
    text = _mask_after(_NAMED_FIELD, text)
    text = _mask_after(_PAIR, text)
    text = _mask_after(_ASSIGNMENT, text)
    text = _USERINFO.sub(lambda m: f"{m.group('pre')}{MASK}@", text)
    text = _AUTH_SCHEME.sub(_auth_scheme, text)
    return _JWT.sub(MASK, text)


# ---------------------------------------------------------------------------------------------- URLs, forms


def _redact_pairs(query: str, known: Iterable[str]) -> str:
    """A ``a=b&c=d`` string (query, fragment, form body) with the values of secret names masked, the rest kept
    as it is (values are still searched for nested secrets, e.g. an encoded URL)."""
    pieces = re.split(r"([&;])", query)
    out = []
    for piece in pieces:
        if piece in ("&", ";") or "=" not in piece:
            out.append(redact_text(piece, known) if piece not in ("&", ";") else piece)
            continue
        name, _, value = piece.partition("=")
        if value and is_secret_name(unquote_plus(name)):
            out.append(f"{name}={MASK}")
        else:
            out.append(f"{name}={redact_text(value, known)}")
    return "".join(out)


def redact_url(url: str, known: Iterable[str] = ()) -> str:
    """``url`` with the password of its user info, the values of secret query (and fragment) parameters and
    any ``known`` secret masked; everything else is kept as it was written."""
    url = mask_known(url, known)
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url, known)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = _redact_pairs(parts.query, known) if parts.query else ""
    fragment = _redact_pairs(parts.fragment, known) if "=" in parts.fragment else parts.fragment
    path = redact_text(parts.path, known) if ";" in parts.path or "=" in parts.path else parts.path
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def redact_form(form: Mapping[str, Any] | str, known: Iterable[str] = ()) -> Any:
    """A form (a mapping, or a ``application/x-www-form-urlencoded`` body) with secret fields masked."""
    if isinstance(form, str):
        return _redact_pairs(form, known)
    return {k: MASK if is_secret_name(str(k)) else redact_json(v, known) for k, v in form.items()}


def redact_headers(headers: Mapping[str, str], known: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``headers`` safe to show: secret headers (Authorization, Cookie, Set-Cookie, X-Auth-Token,
    API keys...) masked whole, known secrets masked in the others."""
    return {k: MASK if is_secret_name(k) else redact_text(str(v), known) for k, v in headers.items()}


# ---------------------------------------------------------------------------------------------- JSON values

_FIELD_NAME_KEYS = frozenset({"name", "key", "field", "param", "parameter", "header"})
_FIELD_VALUE_KEYS = frozenset({"value", "values", "val"})


def _mask_everything(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_everything(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_everything(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return MASK


def _is_pair_list(value: list[Any] | tuple[Any, ...]) -> bool:
    return bool(value) and all(isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], str) for v in value)


def _redact_value(value: Any, known: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        names_secret = any(
            str(k).lower() in _FIELD_NAME_KEYS and isinstance(v, str) and is_secret_name(v) for k, v in value.items()
        )
        out = {}
        for k, v in value.items():
            key = str(k)
            if is_secret_name(key) or (names_secret and key.lower() in _FIELD_VALUE_KEYS):
                out[k] = _mask_everything(v)
            else:
                out[k] = _redact_value(v, known)
        return out
    if isinstance(value, (list, tuple)):
        if _is_pair_list(value):
            return [[k, _mask_everything(v) if is_secret_name(k) else _redact_value(v, known)] for k, v in value]
        return [_redact_value(v, known) for v in value]
    if isinstance(value, str):
        return redact_text(value, known)
    return value


def redact_json(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of a decoded JSON value with secrets masked: every value under a secret key (whole lists and
    objects included), the values of ``[name, value]`` form pairs and ``{"name": ..., "value": ...}`` fields
    with a secret name, and secrets inside strings (:func:`redact_text`)."""
    return _redact_value(value, frozenset(known))


_FORM_BODY = re.compile(r"^[\w.$%-]+=[^\s&]*(?:&[\w.$%-]+=[^\s&]*)*$")


def redact_body(body: bytes | str, content_type: str | None = None, known: Iterable[str] = ()) -> str:
    """A server's answer as safe text: JSON is redacted value by value (:func:`redact_json`) and written
    back compactly, a form body field by field, anything else as free text (:func:`redact_text`)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    known = frozenset(known)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError:
            pass
        else:
            return mask_known(json.dumps(redact_json(data, known), ensure_ascii=False), known)
    if "x-www-form-urlencoded" in (content_type or "").lower() or _FORM_BODY.match(stripped):
        return _redact_pairs(stripped, known)
    return redact_text(text, known)


# ---------------------------------------------------------------------------------------------- the registry


class SecretRegistry:
    """The secrets this process knows (passwords, tokens); thread-safe. Registering is cheap and idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def register(self, value: str | None) -> bool:
        """Remember ``value`` (ignored when shorter than :data:`MIN_SECRET_LENGTH` or already known);
        True when it was new."""
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH or value == MASK:
            return False
        with self._lock:
            if value in self._secrets:
                return False
            self._secrets = self._secrets | {value}
        return True

    @property
    def secrets(self) -> frozenset[str]:
        """A snapshot of the known secrets."""
        return self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self._secrets)} secrets)"


#: This process's registry.
SECRETS = SecretRegistry()


def register_secret(value: str | None) -> None:
    """Register a password or token senprep has just learned: from now on it is masked in this process's
    messages, log records, events and reports. Also makes sure log records are redacted."""
    if SECRETS.register(value):
        install_log_redaction()


def registered_secrets() -> frozenset[str]:
    """The secrets registered in this process."""
    return SECRETS.secrets


def scrub(text: str) -> str:
    """``text`` that holds something a server or a library wrote, with the registered secrets and
    everything that looks secret masked (:func:`redact_text`)."""
    return redact_text(text, SECRETS.secrets)


def scrub_known(text: str) -> str:
    """``text`` senprep wrote itself, with the registered secrets masked (no pattern guessing)."""
    return mask_known(text, SECRETS.secrets)


def scrub_url(url: str) -> str:
    """:func:`redact_url` with the registered secrets."""
    return redact_url(url, SECRETS.secrets)


# ---------------------------------------------------------------------------------------------- logging

#: Loggers whose records may carry server text (URLs, bodies): their records get the pattern redaction
#: too; the records of every other logger get the registered secrets masked.
PATTERN_LOGGERS = ("senprep", "senprep_core", "app", "urllib3", "requests", "sentinelsat", "pystac_client")


def redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in a log record, in place: its message (then formatted, ``args`` dropped) and the text
    of its exception. Records of :data:`PATTERN_LOGGERS` get :func:`scrub`, the others :func:`scrub_known`."""
    known = SECRETS.secrets
    patterns = (record.name or "").split(".", 1)[0] in PATTERN_LOGGERS
    if not known and not patterns:
        return
    clean: Callable[[str], str] = scrub if patterns else scrub_known
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: left to the logging machinery, which reports it
        return
    cleaned = clean(message)
    if cleaned != message:
        record.msg = cleaned
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        cleaned_exc = scrub(text)
        if cleaned_exc != text:
            record.exc_text = cleaned_exc
            record.exc_info = None  # formatters print exc_text; nothing formats the raw exception again


class RedactingFilter(logging.Filter):
    """A logging filter that applies :func:`redact_record` (for handlers of an application's choice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Make every log record created in this process go through :func:`redact_record` (once per process):
    a log record factory wrapping the current one, so no logger, handler or propagation path is missed."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "PATTERN_LOGGERS",
    "SECRETS",
    "RedactingFilter",
    "SecretRegistry",
    "install_log_redaction",
    "is_secret_name",
    "mask_known",
    "redact_body",
    "redact_form",
    "redact_headers",
    "redact_json",
    "redact_record",
    "redact_text",
    "redact_url",
    "register_secret",
    "registered_secrets",
    "scrub",
    "scrub_known",
    "scrub_url",
    "secret_variants",
]
