"""No password and no token leaks, end to end: ``senprep run --source cdse:URL --credentials FILE`` (a real
process) against the CDSE-protocol server on 127.0.0.1 while the server echoes the secrets back:

- the token endpoint refuses the login with HTTP 422 (and with 401), echoing the posted form in its body as
  JSON lists, nested objects, ``[name, value]`` pairs and free text, and in its reason phrase;
- the download server echoes the caller's Bearer token in a 403 body (free text, a header object, a list),
  in the URL of a redirect (then serves the file), and in a 404 body and reason phrase after that redirect;
- a successful run.

Runs go serially with ``-v`` (debug logs of senprep and urllib3 on stderr), in ``--njobs 2`` worker processes
(which log in themselves) with ``--log-json`` events, and on a local Dask cluster. Then stdout, stderr, every
file of each run folder (run.json, config, unit manifests, sidecars, STAC items), the members of a
``senprep export OUTDIR --zip`` archive and every file of the shared download cache are searched, as
bytes, for the password and every token the server issued, in all their encoded forms: none may appear.
The errors still say what failed (the HTTP status, the URL, the fix) with ``***`` in place of the secret.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from senprep_core.demo.catalog import demo_config_dict
from tests.conftest import ROOT
from tests.servers.cdse_server import CdseServer

pytestmark = pytest.mark.integration

USER = "leak-check@example.org"
PASSWORD = "Pa55-w0rd!echo@leak"  # URL-encoding changes it: its encoded forms are searched too
MASK = "***"
L2A = (  # the demo run's three products
    "S2A_MSIL2A_20210511T113629_N0214_R080_T30UVG_20210511T140000",
    "S2B_MSIL2A_20220420T113619_N0400_R080_T30UVG_20220420T140000",
    "S2B_MSIL2A_20220729T113629_N0500_R080_T30UVG_20220729T140000",
)


def forms(secret: str) -> set[bytes]:
    """How a secret may be written: as is, URL-encoded, JSON-escaped, HTML-escaped."""
    texts = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], html.escape(secret)}
    return {t.encode() for t in texts}


@dataclass
class Sweep:
    """Everything a set of runs left behind, as (where, bytes)."""

    blobs: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, where: str, data: bytes | str) -> None:
        self.blobs.append((where, data.encode() if isinstance(data, str) else data))

    def add_tree(self, label: str, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(f"{label}/{path.relative_to(root)}", path.read_bytes())

    def add_zip(self, label: str, archive: Path) -> None:
        self.add(label, archive.read_bytes())
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                self.add(f"{label}!{name}", zf.read(name))

    def leaks(self, secrets: list[str]) -> list[str]:
        found = []
        for where, data in self.blobs:
            for form in {f for secret in secrets for f in forms(secret)}:
                at = data.find(form)
                if at >= 0:
                    found.append(f"{where}: ...{data[max(0, at - 80) : at + 80]!r}...")
        return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_products: Path) -> Iterator[CdseServer]:
    srv = CdseServer(tmp_path_factory.mktemp("cdse-leaks"), username=USER, password=PASSWORD)
    srv.add_products(demo_products)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def echoes(server: CdseServer) -> Iterator[CdseServer]:
    """The three products' downloads echo the token: in a 403 body; in a redirect URL (then succeed); in a
    redirect URL then a 404 body. Reset afterwards."""
    for product_id, mode in zip(L2A, ("body", "redirect", "redirect-error"), strict=True):
        server.by_name(product_id).echo = mode
    yield server
    for product_id in L2A:
        server.by_name(product_id).echo = None
    server.token_echo = None


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    outdir: Path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("SENPREP_CDSE_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "senprep_core.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def _run(server: CdseServer, work: Path, name: str, *flags: str) -> Ran:
    config = work / "demo.json"
    if not config.exists():
        config.write_text(json.dumps(demo_config_dict()))
    credentials = work / "credentials.json"
    if not credentials.exists():
        credentials.write_text(json.dumps({"username": USER, "password": PASSWORD}))
        credentials.chmod(0o600)
    outdir = work / name
    cache = work / f"cache-{name}"
    done = _cli("-v", "run", "--config", str(config), "--outdir", str(outdir), "--source", f"cdse:{server.url}",
                "--credentials", str(credentials), "--cache-dir", str(cache), *flags, cwd=work)  # fmt: skip
    return Ran(done.returncode, done.stdout, done.stderr, outdir)


def _sweep(work: Path, runs: list[Ran]) -> Sweep:
    """stdout, stderr, the run folders, their export archives and the download caches."""
    sweep = Sweep()
    for ran in runs:
        sweep.add(f"{ran.outdir.name}: stdout", ran.stdout)
        sweep.add(f"{ran.outdir.name}: stderr", ran.stderr)
        sweep.add_tree(ran.outdir.name, ran.outdir)
        archive = work / f"{ran.outdir.name}.zip"
        exported = _cli("export", str(ran.outdir), "--zip", "--output", str(archive), cwd=work)
        assert exported.returncode == 0, exported.stderr
        sweep.add(f"{ran.outdir.name}: export output", exported.stdout + exported.stderr)
        sweep.add_zip(archive.name, archive)
    for cache in sorted(work.glob("cache-*")):
        sweep.add_tree(cache.name, cache)
    return sweep


def _units(ran: Ran) -> dict[str, dict[str, object]]:
    report = json.loads((ran.outdir / "run.json").read_text())
    return {unit["unit_id"]: unit for unit in report["units"]}


def _unit_of(units: dict[str, dict[str, object]], product_id: str) -> dict[str, object]:
    return next(u for uid, u in units.items() if product_id in uid)


def test_echoed_password_and_tokens_never_leak(echoes: CdseServer, tmp_path: Path) -> None:
    server = echoes
    runs = [
        _run(server, tmp_path, "serial", "--fetch", "product"),
        _run(server, tmp_path, "workers", "--njobs", "2", "--log-json", "--fetch", "roi"),
        _run(server, tmp_path, "dask", "--dask-workers", "1"),  # ROI mode: downloads report from their threads
    ]
    server.token_echo = (422, "Unprocessable")
    runs.append(_run(server, tmp_path, "login-422", "--fetch", "roi"))
    server.token_echo = (401, "Unauthorized")
    runs.append(_run(server, tmp_path, "login-401", "--fetch", "roi"))
    server.token_echo = None
    for product_id in L2A:
        server.by_name(product_id).echo = None
    runs.append(_run(server, tmp_path, "clean", "--fetch", "roi"))

    # the server did echo every secret, so the sweep below means something
    assert server.issued and all(server.echoes[k] for k in ("body", "redirect", "redirect-error", "token-form"))
    sweep = _sweep(tmp_path, runs)
    assert len(sweep.blobs) > 50
    leaks = sweep.leaks([PASSWORD, *server.issued])
    assert not leaks, "\n".join(leaks)

    # the errors still say what went wrong and how to fix it, with the secret masked
    serial, workers, dask, login_422, login_401, clean = runs
    for ran in (serial, workers, dask):
        assert ran.code == 1, ran.stderr
        units = _units(ran)
        refused = _unit_of(units, L2A[0])
        assert refused["status"] == "failed" and "HTTP 403" in str(refused["error_message"])
        assert "access denied" in str(refused["error_message"]) and MASK in str(refused["error_message"])
        assert _unit_of(units, L2A[1])["status"] == "done", _unit_of(units, L2A[1])  # redirected with the token
        missing = _unit_of(units, L2A[2])
        assert missing["status"] == "failed" and "HTTP 404" in str(missing["error_message"])
        assert MASK in str(missing["error_message"]) and "Not found" in str(missing["error_message"])
        assert "HTTP 403" in ran.stderr and MASK in ran.stderr
    assert "GET /zipper/" in serial.stderr and f"token={MASK}" in serial.stderr  # urllib3's debug log, masked
    assert any(json.loads(line).get("event") == "UnitFinished" for line in workers.stdout.splitlines())
    for ran in (login_422, login_401):
        assert ran.code == 1 and all(u["status"] == "failed" for u in _units(ran).values())
    assert "HTTP 422" in login_422.stderr and MASK in login_422.stderr and "cdse-token" in login_422.stderr
    assert "rejected the user name or password" in login_401.stderr and "dataspace.copernicus.eu" in login_401.stderr
    assert clean.code == 0, clean.stderr
    assert json.loads((clean.outdir / "run.json").read_text())["status"] == "complete"
