"""The HTTP client against a real file server on 127.0.0.1 with injected faults (issue 5, "Downloads").

Each test states what it proves; the server counts bytes, requests and parallel requests, so the
assertions are about what actually crossed the wire.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections import namedtuple
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from senprep_core.errors import (
    ChecksumError,
    CorruptProductError,
    CredentialsError,
    DiskSpaceError,
    DownloadError,
    MetadataError,
)
from senprep_core.events import BytesProgress, Event
from senprep_core.fetch.cache import ProductCache, default_cache_dir, marker_path, part_path
from senprep_core.fetch.http import Checksum, DownloadJob, DownloadResult, HttpClient, HttpStatusError, _same_site
from senprep_core.fetch.retry import RetryPolicy, parse_retry_after
from tests.conftest import ROOT
from tests.servers.fileserver import CHUNK, Corrupt, DropAfter, FileServer, IgnoreRange, Reply, Truncate, serve_files

BLOB_SIZE = 1_000_000


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Served files: a 1 MB random blob, a valid zip, a JSON document, 8 small files."""
    folder = tmp_path_factory.mktemp("served")
    rng = random.Random(5)
    (folder / "blob.bin").write_bytes(rng.randbytes(BLOB_SIZE))
    with zipfile.ZipFile(folder / "product.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(4):
            archive.writestr(f"PRODUCT.SAFE/measurement/band{i}.tif", rng.randbytes(100_000))
    (folder / "doc.json").write_text('{"hello": "world"}')
    for i in range(8):
        (folder / f"small{i}.bin").write_bytes(rng.randbytes(100_000))
    return folder


@pytest.fixture
def server(root: Path) -> Iterator[FileServer]:
    with serve_files(root) as srv:
        yield srv


def client(**kwargs: object) -> HttpClient:
    options: dict[str, object] = {"name": "test", "timeout": 10.0, "backoff": 0.01, "max_backoff": 5.0}
    options.update(kwargs)
    return HttpClient(**options)  # type: ignore[arg-type]


def md5(path: Path) -> Checksum:
    return Checksum("MD5", hashlib.md5(path.read_bytes()).hexdigest())


class FakeAuth:
    """Bearer tokens in turn: ``invalidate`` moves to the next one (as a token refresh would)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.invalidations = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[0]}"}

    def invalidate(self) -> None:
        self.invalidations += 1
        if len(self.tokens) > 1:
            self.tokens.pop(0)


def no_leftovers(dest: Path) -> bool:
    return not dest.exists() and not part_path(dest).exists() and not marker_path(dest).exists()


# ---------------------------------------------------------------------- plain download, progress, cache


def test_download_verifies_renames_and_reports_progress(server: FileServer, root: Path, tmp_path: Path) -> None:
    """A download lands at dest (no .part left), verified, with throttled BytesProgress events."""
    events: list[Event] = []
    server.rate_bps = 2_000_000  # 0.5 s for the blob
    dest = tmp_path / "blob.bin"
    result = client(on_event=events.append, chunk_size=16_384).download(
        f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin")
    )
    assert result == DownloadResult(dest, BLOB_SIZE, BLOB_SIZE, False, 0, result.seconds)
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()
    assert not part_path(dest).exists() and marker_path(dest).exists()
    progress = [e for e in events if isinstance(e, BytesProgress)]
    assert progress[-1].done == BLOB_SIZE and progress[-1].total == BLOB_SIZE and progress[-1].rate > 0
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    gaps = [b.time - a.time for a, b in itertools.pairwise(progress[:-1])]
    assert all(gap >= 0.15 for gap in gaps)  # at most ~5 per second (plus the final one)
    assert len(progress) <= 5 * result.seconds + 2


def test_complete_file_is_not_fetched_again(server: FileServer, root: Path, tmp_path: Path) -> None:
    """A verified dest is reused (marker); without the marker, a matching checksum is enough."""
    dest = tmp_path / "blob.bin"
    http = client()
    http.download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE)
    again = http.download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE)
    assert again.from_cache and again.bytes_transferred == 0
    marker_path(dest).unlink()
    checked = http.download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin"))
    assert checked.from_cache and marker_path(dest).exists()
    assert len(server.gets()) == 1


# ---------------------------------------------------------------------- resumable transfers


def test_dropped_connection_resumes_from_the_byte_offset(server: FileServer, root: Path, tmp_path: Path) -> None:
    """The connection drops after 300 kB: the client asks for the rest only (Range from 300000)."""
    server.add_fault(DropAfter("/blob.bin", after=300_000))
    dest = tmp_path / "blob.bin"
    result = client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin"))
    assert [r.range for r in server.gets()] == [None, "bytes=300000-"]
    assert BLOB_SIZE <= server.total_bytes <= BLOB_SIZE + CHUNK  # not twice the file
    assert result.retries == 1 and result.bytes_transferred == BLOB_SIZE
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()


def test_part_left_by_an_earlier_run_is_resumed(server: FileServer, root: Path, tmp_path: Path) -> None:
    """A .part from an interrupted run: only the missing bytes are transferred, checksum still verified."""
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes((root / "blob.bin").read_bytes()[:400_000])
    result = client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin"))
    assert [r.range for r in server.gets()] == ["bytes=400000-"]
    assert result.bytes_transferred == BLOB_SIZE - 400_000 == server.total_bytes
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()


def test_server_ignoring_range_restarts_the_part(server: FileServer, root: Path, tmp_path: Path) -> None:
    """After a drop, a server answering 200 to the Range request sends everything: the part restarts."""
    server.add_fault(DropAfter("/blob.bin", after=200_000)).add_fault(IgnoreRange("/blob.bin"))
    dest = tmp_path / "blob.bin"
    client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin"))
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()


# ---------------------------------------------------------------------- retries


def test_429_retry_after_is_honoured(server: FileServer, tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 makes the client wait at least 1 s (measured by the server)."""
    server.add_fault(Reply("/blob.bin", 429, retry_after="1"))
    result = client(backoff=0.001).download(f"{server.url}/blob.bin", tmp_path / "blob.bin")
    first, second = server.gets()
    assert second.time - first.time >= 1.0
    assert result.retries == 1 and result.seconds < 5


def test_retry_after_parsing_and_cap() -> None:
    """Retry-After as seconds or an HTTP date; capped at max_backoff; small values honoured exactly."""
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None
    policy = RetryPolicy(retries=3, backoff=0.5, max_backoff=30.0)
    assert policy.delay(1, 0.25) == 0.25 and policy.delay(1, 3600.0) == 30.0
    assert all(0 <= policy.delay(n) <= min(30.0, 0.5 * 2 ** (n - 1)) for n in range(1, 10))


def test_503_burst_is_retried(server: FileServer, tmp_path: Path) -> None:
    """Three 503 answers in a row, then the file."""
    server.add_fault(Reply("/blob.bin", 503, times=3))
    result = client().download(f"{server.url}/blob.bin", tmp_path / "blob.bin", size=BLOB_SIZE)
    assert result.retries == 3 and len(server.gets()) == 4 and result.size == BLOB_SIZE


def test_retries_run_out_with_a_clear_error(server: FileServer, tmp_path: Path) -> None:
    """A server stuck at 503: after `retries` retries a DownloadError names the URL and the status."""
    server.add_fault(Reply("/blob.bin", 503, times=None))
    with pytest.raises(DownloadError, match=r"blob\.bin.*HTTP 503"):
        client(retries=2).download(f"{server.url}/blob.bin", tmp_path / "blob.bin")
    assert len(server.gets()) == 3


def test_404_fails_at_once(server: FileServer, tmp_path: Path) -> None:
    """4xx other than 401/408/429: no retry, the error carries the status and the URL."""
    with pytest.raises(HttpStatusError, match=r"missing\.bin answered HTTP 404") as caught:
        client().download(f"{server.url}/missing.bin", tmp_path / "missing.bin")
    assert caught.value.status == 404 and len(server.gets()) == 1
    assert no_leftovers(tmp_path / "missing.bin")


# ---------------------------------------------------------------------- verification


def test_wrong_checksum_discards_the_file(server: FileServer, root: Path, tmp_path: Path) -> None:
    """One flipped byte: ChecksumError, and neither dest nor .part nor marker remains."""
    server.add_fault(Corrupt("/blob.bin", offset=123_456))
    dest = tmp_path / "blob.bin"
    with pytest.raises(ChecksumError, match=r"corrupt file.*discarded.*another source"):
        client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE, checksum=md5(root / "blob.bin"))
    assert no_leftovers(dest)


def test_blake3_checksum(server: FileServer, root: Path, tmp_path: Path) -> None:
    """BLAKE3 checksums (CDSE lists them) are verified with the blake3 package."""
    from blake3 import blake3

    good = Checksum("BLAKE3", blake3((root / "blob.bin").read_bytes()).hexdigest())
    client().download(f"{server.url}/blob.bin", tmp_path / "a.bin", checksum=good)
    with pytest.raises(ChecksumError):
        client().download(f"{server.url}/blob.bin", tmp_path / "b.bin", checksum=Checksum("blake3", "00" * 32))


def test_missing_blake3_package_is_a_clear_error(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the optional package the error says what to install, before anything is fetched."""
    monkeypatch.setitem(sys.modules, "blake3", None)
    with pytest.raises(DownloadError, match=r"pip install"):
        client().download(f"{server.url}/blob.bin", tmp_path / "a.bin", checksum=Checksum("blake3", "ab"))
    assert server.gets() == []
    with pytest.raises(MetadataError, match="sha1"):
        Checksum("sha1", "ab")


def test_truncated_zip_is_rejected(server: FileServer, root: Path, tmp_path: Path) -> None:
    """A zip cut short (the server says that is all of it): CorruptProductError, nothing kept."""
    size = (root / "product.zip").stat().st_size
    server.add_fault(Truncate("/product.zip", length=size - 1000))
    dest = tmp_path / "product.zip"
    with pytest.raises(CorruptProductError, match=r"corrupt file.*another source"):
        client().download(f"{server.url}/product.zip", dest)
    assert no_leftovers(dest)


def test_zip_with_a_bad_member_crc_is_rejected(server: FileServer, root: Path, tmp_path: Path) -> None:
    """No catalogue checksum, right size, one flipped byte inside a member: the CRC check catches it."""
    size = (root / "product.zip").stat().st_size
    server.add_fault(Corrupt("/product.zip", offset=150_000))
    dest = tmp_path / "product.zip"
    with pytest.raises(CorruptProductError, match="CRC"):
        client().download(f"{server.url}/product.zip", dest, size=size)
    assert no_leftovers(dest)


def test_disk_space_shortfall_fails_before_downloading(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too little free space: DiskSpaceError, and the server never saw a GET."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 10**6, 10**6))
    dest = tmp_path / "blob.bin"
    with pytest.raises(DiskSpaceError, match="free disk space"):
        client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE)
    assert server.gets() == [] and no_leftovers(dest)


# ---------------------------------------------------------------------- concurrency and the cache lock


def test_concurrency_never_exceeds_the_limit(server: FileServer, tmp_path: Path) -> None:
    """8 slow files with max_connections=2: the server sees exactly 2 requests at once, never more."""
    server.rate_bps = 500_000  # 0.2 s per file
    jobs = [DownloadJob(f"{server.url}/small{i}.bin", tmp_path / f"small{i}.bin", size=100_000) for i in range(8)]
    results = client(max_connections=2).download_many(jobs)
    assert all(isinstance(r, DownloadResult) for r in results)
    assert server.max_active == 2
    assert len(server.gets()) == 8


def test_two_threads_fetch_the_same_file_once(server: FileServer, tmp_path: Path) -> None:
    """Two clients want the same dest at once: one downloads, the other waits and reuses it."""
    server.rate_bps = 2_000_000
    dest = tmp_path / "cache" / "blob.bin"
    barrier = threading.Barrier(2)
    results: list[DownloadResult] = []

    def fetch() -> None:
        barrier.wait()
        results.append(client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.from_cache for r in results) == [False, True]
    assert len(server.gets()) == 1 and server.total_bytes == BLOB_SIZE


def test_two_processes_fetch_the_same_file_once(server: FileServer, tmp_path: Path) -> None:
    """Another process is downloading dest (holds dest.lock): this one waits, then takes it from the cache."""
    server.rate_bps = 1_000_000  # 1 s for the blob
    dest = tmp_path / "blob.bin"
    code = (
        "import sys; from pathlib import Path; from senprep_core.fetch.http import HttpClient; "
        "HttpClient(name='other').download(sys.argv[1], Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = subprocess.Popen([sys.executable, "-c", code, f"{server.url}/blob.bin", str(dest)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 20
        while not part_path(dest).exists():
            assert time.monotonic() < deadline and other.poll() is None, "the other process did not start"
            time.sleep(0.02)
        result = client().download(f"{server.url}/blob.bin", dest, size=BLOB_SIZE)
    finally:
        assert other.wait(30) == 0
    assert result.from_cache
    assert len(server.gets()) == 1 and server.total_bytes == BLOB_SIZE


# ---------------------------------------------------------------------- auth and secrets


def test_401_invalidates_the_token_and_retries_once(server: FileServer, tmp_path: Path) -> None:
    """A stale token gets 401: auth.invalidate(), one retry with the fresh token, success."""
    server.required_auth = "Bearer fresh"
    auth = FakeAuth("stale", "fresh")
    result = client(auth=auth).download(f"{server.url}/blob.bin", tmp_path / "blob.bin", auth=True)
    assert auth.invalidations == 1 and result.size == BLOB_SIZE
    assert [r.headers.get("Authorization") for r in server.gets()] == ["Bearer stale", "Bearer fresh"]
    assert client(auth=auth).get_json(f"{server.url}/doc.json", auth=True) == {"hello": "world"}


def test_refused_fresh_credentials_raise_credentials_error(server: FileServer, tmp_path: Path) -> None:
    """401 again after the refresh: CredentialsError (no endless loop)."""
    server.required_auth = "Bearer right"
    auth = FakeAuth("wrong", "still-wrong")
    with pytest.raises(CredentialsError, match="HTTP 401"):
        client(auth=auth).download(f"{server.url}/blob.bin", tmp_path / "blob.bin", auth=True)
    assert auth.invalidations == 1 and len(server.gets()) == 2


def test_secrets_never_leak(server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A token (header) and a password/signature (URL query) never reach logs, events or exception text."""
    token, password, signature = "tok-SECRET-4242", "pw-SECRET-1717", "sig-SECRET-9090"
    secrets = (token, password, signature)
    caplog.set_level(logging.DEBUG)
    server.required_auth = f"Bearer {token}"
    server.add_fault(Reply("/blob.bin", 503))
    events: list[Event] = []
    http = client(auth=FakeAuth(token), on_event=events.append, retries=1)
    query = f"?password={password}&sig={signature}"
    http.download(f"{server.url}/blob.bin{query}", tmp_path / "blob.bin", auth=True)
    errors: list[BaseException] = []
    for url in (f"{server.url}/missing.bin{query}", f"http://127.0.0.1:9/closed{query}"):
        with pytest.raises(DownloadError) as caught:
            http.download(url, tmp_path / "x.bin", auth=True)
        errors.append(caught.value)
    http.post_form(f"{server.url}/token", {"username": "u", "password": password}, auth=True)
    assert "blob.bin" in caplog.text and "retry" in caplog.text  # the logs were captured
    shown = caplog.text + "".join(repr(e) for e in events) + "".join(f"{e}{e!r}" for e in errors)
    assert not [s for s in secrets if s in shown]


# ---------------------------------------------------------------------- small pieces


def test_get_json_and_post_form(server: FileServer) -> None:
    http = client()
    assert http.get_json(f"{server.url}/doc.json") == {"hello": "world"}
    assert http.post_form(f"{server.url}/token", {"grant_type": "password"}) == {
        "path": "/token",
        "form": {"grant_type": "password"},
    }
    with pytest.raises(DownloadError, match="did not answer JSON"):
        http.get_json(f"{server.url}/blob.bin")


def test_product_cache_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ProductCache(tmp_path)
    assert cache.path_for("cdse", "abc-123", "GRANULE/x/B04.jp2") == tmp_path / "cdse/abc-123/GRANULE/x/B04.jp2"
    for provider, product, name in [
        ("cdse", "..", "a.zip"),
        ("cdse", "a/b", "a.zip"),
        ("cdse", "p", "../../etc/passwd"),
        ("cdse", "p", "/etc/passwd"),
        ("cdse", "p", "a/../../b"),
        ("", "p", "a.zip"),
    ]:
        with pytest.raises(MetadataError):
            cache.path_for(provider, product, name)
    monkeypatch.setenv("SENPREP_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SENPREP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "senprep"


def test_auth_kept_only_on_same_site_redirects() -> None:
    assert _same_site("download.dataspace.copernicus.eu", "zipper.dataspace.copernicus.eu")
    assert not _same_site("download.dataspace.copernicus.eu", "evil.example.com")
    assert not _same_site("www.example.co.uk", "evil.co.uk")
    assert _same_site("www.example.co.uk", "a.example.co.uk")
    assert not _same_site("a.co.uk", "evil.co.uk")
    assert not _same_site("127.0.0.1", "127.0.0.2")
