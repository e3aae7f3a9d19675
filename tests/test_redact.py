"""Redaction alone (:mod:`senprep_core.fetch.redact`): every shape a secret can be echoed in, the names that
announce a secret, what must stay readable, the registry of known secrets, log records, events, and the
places senprep registers what it learns (credentials, CDSE / DHuS / Planetary Computer tokens), also in
worker processes."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from senprep_core.events import Event, Message, UnitFinished, clean_event
from senprep_core.executors import FailedTask, ProcessExecutor
from senprep_core.fetch.credentials import Credentials, Secret
from senprep_core.fetch.http import _body_snippet
from senprep_core.fetch.redact import (
    MASK,
    SecretRegistry,
    install_log_redaction,
    is_secret_name,
    mask_known,
    redact_body,
    redact_form,
    redact_headers,
    redact_json,
    redact_text,
    redact_url,
    register_secret,
    registered_secrets,
    scrub,
    scrub_known,
    secret_variants,
)
from tests.conftest import ROOT

# ---------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    ["password", "Password", "passwd", "user_pass", "pwd", "client_secret", "access_token", "refresh_token", "token",
     "id_token", "Authorization", "Proxy-Authorization", "api_key", "apiKey", "X-Api-Key", "Ocp-Apim-Subscription-Key",
     "key", "sig", "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "AWSAccessKeyId",
     "Cookie", "Set-Cookie", "X-Auth-Token", "sessionid", "JSESSIONID", "session_state", "credentials", "auth"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["username", "user", "client_id", "grant_type", "expires_in", "KeyError", "keywords", "monkey", "signal",
     "passed", "bypass", "author", "authority", "$filter", "$top", "error", "error_description", "detail", "url"],
)  # fmt: skip
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


# ---------------------------------------------------------------------- JSON in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"password": "pw1"}', '{"password": "***"}'),
        ('{"password":"pw1","username":"bob"}', '{"password":"***","username":"bob"}'),
        ('{"password": ["pw1", "pw2"], "username": ["bob"]}', '{"password": ["***", "***"], "username": ["bob"]}'),
        ('{"form": {"user": ["bob"], "password": ["pw1"]}}', '{"form": {"user": ["bob"], "password": ["***"]}}'),
        ('{"a": [{"b": {"client_secret": {"value": "s3", "n": 5, "ok": true}}}]}',
         '{"a": [{"b": {"client_secret": {"value": "***", "n": ***, "ok": true}}}]}'),
        ('{"access_token": "at1", "expires_in": 600, "refresh_token": "rt1"}',
         '{"access_token": "***", "expires_in": 600, "refresh_token": "***"}'),
        ('{"token": null, "password": ""}', '{"token": null, "password": "***"}'),
        ("{'password': 'pw1', 'user': 'bob'}", "{'password': '***', 'user': 'bob'}"),  # Python repr
        ('{"detail": "{\\"password\\": [\\"pw1\\"]}"}', '{"detail": "{\\"password\\": [\\"***\\"]}"}'),  # JSON in JSON
        ('[["username", "bob"], ["password", "pw1"]]', '[["username", "bob"], ["password", "***"]]'),
        ("[('username', 'bob'), ('password', 'pw1')]", "[('username', 'bob'), ('password', '***')]"),
        ('{"name": "password", "value": "pw1"}', '{"name": "password", "value": "***"}'),
        ('[{"name": "X-Api-Key", "value": ["k1", "k2"]}]', '[{"name": "X-Api-Key", "value": ["***", "***"]}]'),
        ('{"password": ["pw1"', '{"password": ["***"'),  # cut short
        ('error (HTTP 422): {"password": ["pw1"]} refused', 'error (HTTP 422): {"password": ["***"]} refused'),
    ],
)  # fmt: skip
def test_json_shapes_in_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_json_walks_every_shape_and_leaves_the_input_alone() -> None:
    value = {
        "password": ["pw1", {"deep": "pw2"}],
        "form": {"fields": {"client_secret": "cs1"}, "pairs": [["username", "bob"], ["password", "pw3"]]},
        "fields": [{"name": "token", "value": 123}, {"name": "user", "value": "bob"}],
        "detail": "see https://h/x?token=t1 and Bearer abcdef123456",
        "count": 3,
    }
    before = json.dumps(value)
    assert redact_json(value) == {
        "password": [MASK, {"deep": MASK}],
        "form": {"fields": {"client_secret": MASK}, "pairs": [["username", "bob"], ["password", MASK]]},
        "fields": [{"name": "token", "value": MASK}, {"name": "user", "value": "bob"}],
        "detail": f"see https://h/x?token={MASK} and Bearer {MASK}",
        "count": 3,
    }
    assert json.dumps(value) == before


def test_redact_body_by_content() -> None:
    body = '{"error": "invalid_grant", "password": ["pw1"], "request": {"form": {"password": ["pw1"]}}}'
    assert redact_body(body.encode()) == (
        '{"error": "invalid_grant", "password": ["***"], "request": {"form": {"password": ["***"]}}}'
    )
    assert redact_body("username=bob&password=pw%211&grant_type=password") == (
        "username=bob&password=***&grant_type=password"
    )
    assert redact_body("grant_type=password&refresh_token=rt1", "application/x-www-form-urlencoded") == (
        "grant_type=password&refresh_token=***"
    )
    assert redact_body("Unauthorized: token tk-998877 is not valid", known=["tk-998877"]) == (
        "Unauthorized: token *** is not valid"
    )
    assert redact_body('{"password": ["pw1", "p') == '{"password": ["***", "***'  # not JSON any more: as text


# ---------------------------------------------------------------------- forms, URLs, headers


def test_forms() -> None:
    assert redact_text("username=bob&password=p%40ss&grant_type=password") == (
        "username=bob&password=***&grant_type=password"
    )
    assert redact_form("client_id=cdse-public&client_secret=cs1&refresh_token=rt1") == (
        "client_id=cdse-public&client_secret=***&refresh_token=***"
    )
    assert redact_form({"username": "bob", "password": "pw1", "extra": ["Bearer abcdef123456"]}) == {
        "username": "bob",
        "password": MASK,
        "extra": [f"Bearer {MASK}"],
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bob:pw1@host/x", "https://bob:***@host/x"),
        ("https://h/p?token=t1&access_token=a1&ok=1", "https://h/p?token=***&access_token=***&ok=1"),
        ("https://b.blob.core.windows.net/c/f.tif?st=2024&se=2025&sp=rl&sig=abc%2Bdef",
         "https://b.blob.core.windows.net/c/f.tif?st=2024&se=2025&sp=rl&sig=***"),
        ("https://s3/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Date=20240101&X-Amz-Security-Token=st1&X-Amz-Signature=f00",
         "https://s3/b/k?X-Amz-Credential=***&X-Amz-Date=20240101&X-Amz-Security-Token=***&X-Amz-Signature=***"),
        ("https://h/api?key=k1&api_key=k2&subscription-key=k3", "https://h/api?key=***&api_key=***&subscription-key=***"),
        ("https://h/cb#access_token=a1&state=s", "https://h/cb#access_token=***&state=s"),
        ("https://h/p;jsessionid=j1?x=1", "https://h/p;jsessionid=***?x=1"),
        ("https://h/login?next=https%3A%2F%2Fo%2Fp%3Ftoken%3Dt1%26x%3D1",
         "https://h/login?next=https%3A%2F%2Fo%2Fp%3Ftoken%3D***%26x%3D1"),
        ("http://h/odata/v1/Products?$filter=Name%20eq%20'x'&$top=2", "http://h/odata/v1/Products?$filter=Name%20eq%20'x'&$top=2"),
    ],
)  # fmt: skip
def test_urls(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert redact_text(f"GET {url} failed") == f"GET {expected} failed"


def test_known_secret_in_a_url_path() -> None:
    assert redact_url("https://h/download/tk-abc123/file", ["tk-abc123"]) == "https://h/download/***/file"


def test_headers() -> None:
    headers = {"Authorization": "Bearer t1", "Cookie": "a=b", "Set-Cookie": "s=1; Path=/", "X-Auth-Token": "t2",
               "X-Api-Key": "k1", "Accept": "application/json", "X-Echo": "got tk-abc123"}  # fmt: skip
    assert redact_headers(headers, ["tk-abc123"]) == {
        "Authorization": MASK, "Cookie": MASK, "Set-Cookie": MASK, "X-Auth-Token": MASK, "X-Api-Key": MASK,
        "Accept": "application/json", "X-Echo": "got ***",
    }  # fmt: skip
    lines = (
        "Authorization: Bearer eyX.t1-abc\nProxy-Authorization: Basic Ym9iOnB3MQ==\nCookie: a=b; sessionid=s1\n"
        "Set-Cookie: session=s2; Path=/; HttpOnly\nX-Auth-Token: t2\nAccept: */*"
    )
    assert redact_text(lines) == (
        "Authorization: Bearer ***\nProxy-Authorization: Basic ***\nCookie: ***\nSet-Cookie: ***\n"
        "X-Auth-Token: ***\nAccept: */*"
    )
    assert redact_text("{'Authorization': 'Bearer t1', 'Accept': '*/*'}") == "{'Authorization': '***', 'Accept': '*/*'}"


# ---------------------------------------------------------------------- free text and known secrets


def test_free_text_credentials() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
    assert redact_text(f"refused {jwt} here") == "refused *** here"
    assert redact_text("sent Bearer dGhpcy1pcy1hLXRva2Vu to it") == "sent Bearer *** to it"
    assert redact_text("header was Basic Ym9iOnB3MQ== then") == "header was Basic *** then"


def test_known_secrets_in_every_form() -> None:
    secret = 'p@ss w"rd/<1>'
    forms = secret_variants(secret)
    assert {
        secret,
        "p%40ss%20w%22rd%2F%3C1%3E",
        "p%40ss+w%22rd%2F%3C1%3E",
        'p@ss w\\"rd/<1>',
        "p@ss w&quot;rd/&lt;1&gt;",
    } <= forms
    for form in forms:
        assert mask_known(f"before {form} after", [secret]) == "before *** after"
    assert mask_known("abc and abcd", ["abc", "abcd"]) == "abc and ***"  # too short to mask: "abc"


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: 'B04'",
        "config key 'sources': [] is not valid: give --source local:DIR",
        "cdse-token: http://h/auth/realms/CDSE/protocol/openid-connect/token answered HTTP 422 Unprocessable: x",
        "cdse-token: POST http://h/auth/realms/CDSE/protocol/openid-connect/token: gave up after 4 attempts",
        '{"error": "invalid_grant", "error_description": "Token is not active"}',
        "the bearer token expired; Basic authentication failed",
        "http://h/odata/v1/Products?$filter=Collection/Name eq 'SENTINEL-2'&$top=100",
        "cannot read /data/run/patches/u1/p_S2.tif: No such file or directory",
        "killed by SIGKILL (signal: 9)",
        "HTTP 404 Not Found: the product or file may have been removed; search again",
    ],
)
def test_ordinary_messages_stay_as_they_are(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_is_idempotent() -> None:
    samples = [
        '{"password": ["pw1"], "a": {"token": "t1"}}',
        "username=bob&password=pw1",
        "https://bob:pw1@h/x?sig=s1",
        "Authorization: Bearer abcdef123456",
        "[['password', 'pw1']]",
    ]
    for text in samples:
        once = redact_text(text)
        assert redact_text(once) == once and "pw1" not in once


# ---------------------------------------------------------------------- the registry, logs, events


def test_registry() -> None:
    registry = SecretRegistry()
    assert not registry.register("abc") and not registry.register(None) and not registry.register(MASK)
    assert registry.register("tk-0001") and not registry.register("tk-0001") and len(registry) == 1
    assert registry.secrets == frozenset({"tk-0001"}) and "tk-0001" not in repr(registry)
    register_secret("reg-Secret-4711")
    assert "reg-Secret-4711" in registered_secrets()
    assert scrub_known("a reg-Secret-4711 b password=x") == "a *** b password=x"  # known secrets only
    assert scrub("a reg-Secret-4711 b password=x") == "a *** b password=***"


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    register_secret("log-Secret-0815")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("senprep_core.fetch.http").info("got %s and %s", "log-Secret-0815", "password=pw1")
    logging.getLogger("someone.else").warning("echo log-Secret-0815; password=stays")
    try:
        raise RuntimeError("the server said log-Secret-0815 and token=t1")
    except RuntimeError:
        logging.getLogger("senprep_core.unit.runner").exception("unit failed")
    text = caplog.text
    assert "log-Secret-0815" not in text and "pw1" not in text and "token=t1" not in text
    assert "got *** and password=***" in text and "echo ***; password=stays" in text  # others: known secrets only
    assert "RuntimeError: the server said *** and token=***" in text


def test_events_are_cleaned() -> None:
    register_secret("evt-Secret-1234")
    message = Message("fetched with evt-Secret-1234", level="warning")
    cleaned = clean_event(message, scrub_known)
    assert isinstance(cleaned, Message) and cleaned.text == "fetched with ***" and cleaned.level == "warning"
    assert cleaned.time == message.time
    finished = UnitFinished("u1", "failed", error="HTTP 403 (evt-Secret-1234)")
    assert clean_event(finished, scrub_known).to_dict()["error"] == "HTTP 403 (***)"
    plain = Message("nothing secret")
    assert clean_event(plain, scrub_known) is plain


# ---------------------------------------------------------------------- where senprep registers secrets


def test_credentials_register_the_password_even_when_unpickled_elsewhere() -> None:
    credentials = Credentials("bob", Secret("cred-Pw-31337"))
    assert "cred-Pw-31337" in registered_secrets() and "cred-Pw-31337" not in repr(credentials)
    data = base64.b64encode(pickle.dumps(credentials)).decode()
    code = (
        "import base64, pickle, sys\n"
        "from senprep_core.fetch.redact import registered_secrets, scrub_known\n"
        f"creds = pickle.loads(base64.b64decode('{data}'))\n"
        "print(creds.password.reveal() in registered_secrets(), scrub_known('x cred-Pw-31337 y'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.split() == ["True", "x", "***", "y"]


def test_cdse_tokens_are_registered_when_they_arrive(tmp_path: Path) -> None:
    from senprep_core.fetch.cdse_auth import CdseAuth
    from tests.servers.cdse_server import CdseServer

    server = CdseServer(tmp_path, username="bob", password="cdse-Pw-2718").start()
    try:
        auth = CdseAuth(Credentials("bob", Secret("cdse-Pw-2718")), server.token_url)
        auth.headers()
        auth.invalidate()
        auth.headers()  # refresh grant: new tokens
    finally:
        server.stop()
    assert len(server.issued) == 4 and set(server.issued) <= registered_secrets()


def test_dhus_basic_credentials_and_planetary_computer_tokens_are_registered() -> None:
    from senprep_core.catalog.dhus import _BasicAuth
    from senprep_core.catalog.stac import PlanetaryComputerSigner

    header = _BasicAuth("bob", "dhus-Pw-1618").headers()["Authorization"]
    assert header.removeprefix("Basic ") in registered_secrets()
    sas = "st=2024-01-01&se=2024-01-02&sp=rl&sv=2021-06-08&sr=c&sig=pcSig%2Babc123"
    signer = PlanetaryComputerSigner(get_json=lambda url: {"token": sas, "msft:expiry": "2099-01-01T00:00:00Z"})
    signed = signer({"collection": "c", "assets": {"B04": {"href": "https://a.blob.core.windows.net/c/B04.tif"}}})
    assert signed["assets"]["B04"]["href"].endswith(sas)
    assert {sas, "pcSig+abc123"} <= registered_secrets()
    assert scrub_known(f"cannot open {signed['assets']['B04']['href']}") == (
        "cannot open https://a.blob.core.windows.net/c/B04.tif?***"
    )


def test_error_body_cut_mid_secret_loses_the_partial_word() -> None:
    token = "tk-" + "Q" * 60
    register_secret(token)
    response = requests.Response()
    response.status_code = 403
    response._content = (("x " * 1010) + token + " tail").encode()  # the read stops inside the token
    snippet = _body_snippet(response, stream=False, limit=5000)
    assert "tk-QQQ" not in snippet and snippet.endswith("x")
    body = {"detail": "denied", "request": {"headers": {"Authorization": [f"Bearer {token}"]}}}
    response._content = json.dumps(body).encode()
    assert _body_snippet(response, stream=False) == (
        '{"detail": "denied", "request": {"headers": {"Authorization": ["***"]}}}'
    )


# ---------------------------------------------------------------------- worker processes


def _learn_in_worker(unit: str, emit: object) -> str:
    """A task that learns a secret in its worker (as a worker logging in does), then echoes it everywhere."""
    register_secret(f"wrk-Token-{unit}")
    emit(Message(f"logged in with wrk-Token-{unit}"))  # type: ignore[operator]
    logging.getLogger("senprep_core.unit.runner").warning("worker saw wrk-Token-%s", unit)
    raise RuntimeError(f"server answered: wrk-Token-{unit} is not valid")


@pytest.fixture
def executor() -> Iterator[ProcessExecutor]:
    pool = ProcessExecutor(1)
    yield pool
    pool.close()


def test_a_secret_learned_in_a_worker_is_masked_there(executor: ProcessExecutor) -> None:
    events: list[Event] = []
    results = list(executor.map_units(["u1", "u2"], _learn_in_worker, events.append, threading.Event()))
    assert all(isinstance(r, FailedTask) for r in results) and len(results) == 2
    texts = [f"{r.error_type} {r.message}" for r in results if isinstance(r, FailedTask)]
    texts += [json.dumps(e.to_dict()) for e in events]
    blob = "\n".join(texts)
    assert "wrk-Token-u" not in blob, blob
    assert "server answered: *** is not valid" in blob and "logged in with ***" in blob
    assert not {"wrk-Token-u1", "wrk-Token-u2"} & registered_secrets()  # learned there, not here
