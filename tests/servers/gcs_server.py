"""Google Cloud Storage's JSON API on 127.0.0.1, holding a Sentinel-2 bucket laid out like
``gcp-public-data-sentinel-2``, and Google's OAuth 2.0 token endpoint.

Where the shapes come from:

* listing, ``GET /storage/v1/b/<bucket>/o?prefix=&delimiter=&maxResults=&pageToken=``: a ``storage#objects``
  answer with ``items`` (object resources), ``prefixes`` (the "folders" up to the delimiter, counted with the
  items against ``maxResults``) and ``nextPageToken``; an object resource has ``kind``, ``id``
  (``<bucket>/<name>/<generation>``), ``selfLink``, ``mediaLink``, ``name``, ``bucket``, ``generation``,
  ``metageneration``, ``contentType``, ``storageClass``, ``size`` (a string), ``md5Hash`` and ``crc32c``
  (base64 of the digests; composite objects have no ``md5Hash``), ``etag``, ``timeCreated``, ``updated``:
  the JSON API reference (https://cloud.google.com/storage/docs/json_api/v1/objects/list,
  https://cloud.google.com/storage/docs/json_api/v1/objects) and the ``Objects`` / ``Object`` schemas of the
  storage v1 discovery document (as the generated clients in APIs-guru/openapi-directory have them);
* media downloads, ``GET /download/storage/v1/b/<bucket>/o/<name>?generation=&alt=media`` (the ``mediaLink``)
  and ``GET /storage/v1/b/<bucket>/o/<name>?alt=media``: the bytes with ``Range`` support and the
  ``x-goog-hash: crc32c=...,md5=...``, ``x-goog-generation``, ``x-goog-stored-content-length`` headers
  (https://cloud.google.com/storage/docs/xml-api/reference-headers);
* errors: ``{"error": {"code": 404, "message": "No such object: <bucket>/<name>", "errors": [{"message": ...,
  "domain": "global", "reason": "notFound"}]}}`` (https://cloud.google.com/storage/docs/json_api/v1/status-codes);
* the bucket layout: ``tiles/<zone>/<band>/<square>/<product>.SAFE/...`` for L1C and ``L2/tiles/...`` for
  L2A, with ``<product>.SAFE_$folder$`` placeholder objects next to some folders (Google's Sentinel-2 dataset
  documentation, https://cloud.google.com/storage/docs/public-datasets/sentinel-2);
* tokens, ``POST /token``: the JWT-bearer grant of a service-account key (RFC 7523, RS256-signed assertion with
  ``iss``, ``scope``, ``aud``, ``iat``, ``exp``) and the refresh-token grant of an authorized-user file,
  answered ``{"access_token", "expires_in", "token_type": "Bearer"}`` (Google's OAuth 2.0 for server to server
  applications, https://developers.google.com/identity/protocols/oauth2/service-account).

Test hooks: ``require_token`` (401 without a valid Bearer token, as a private bucket), ``drop_after`` (object
name -> bytes after which its next download closes the connection), ``corrupt`` (object names served with a
flipped byte), ``no_md5`` (object names listed as composite objects: ``crc32c`` only), ``hide`` (object names
missing, as an incomplete upload); counters ``listings``, ``media`` (downloads per object name),
``bytes_served``, ``grants``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import google_crc32c

from senprep_core.catalog.local import LocalProvider
from tests.servers.base import QuietHandler, send_bytes, send_json, start_server, stop_server

BUCKET = "gcp-public-data-sentinel-2"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def error(code: int, message: str, reason: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"message": message, "domain": "global",
                                                                      "reason": reason}]}}  # fmt: skip


@dataclass
class StoredObject:
    name: str
    data: bytes
    generation: str
    created: str

    def resource(self, base: str, bucket: str, composite: bool = False) -> dict[str, Any]:
        encoded = quote(self.name, safe="")
        crc = google_crc32c.Checksum(self.data).digest()
        out = {
            "kind": "storage#object", "id": f"{bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base}/storage/v1/b/{bucket}/o/{encoded}",
            "mediaLink": f"{base}/download/storage/v1/b/{bucket}/o/{encoded}?generation={self.generation}&alt=media",
            "name": self.name, "bucket": bucket, "generation": self.generation, "metageneration": "1",
            "contentType": "application/octet-stream", "storageClass": "STANDARD", "size": str(len(self.data)),
            "md5Hash": _b64(hashlib.md5(self.data).digest()), "crc32c": _b64(crc),
            "etag": _b64(self.generation.encode()), "timeCreated": self.created, "updated": self.created,
            "timeStorageClassUpdated": self.created,
        }  # fmt: skip
        if composite:
            del out["md5Hash"]
            out["componentCount"] = 2
        return out


class GcsServer:
    """The JSON API and token endpoint (see the module docstring)."""

    def __init__(self, bucket: str = BUCKET, *, require_token: bool = False) -> None:
        self.bucket = bucket
        self.require_token = require_token
        self.objects: dict[str, StoredObject] = {}
        self.accounts: dict[str, Any] = {}  # client_email -> RSA public key
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # refresh token -> (client_id, client_secret)
        self.listings: list[dict[str, str]] = []
        self.media: Counter[str] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.grants: Counter[str] = Counter()
        self.drop_after: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.no_md5: set[str] = set()
        self.hide: set[str] = set()
        self.issued: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------------ content

    def put(self, name: str, data: bytes) -> None:
        stamp = datetime(2022, 8, 1, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        self.objects[name] = StoredObject(name, data, str(1_659_312_000_000_000 + len(self.objects)), stamp)

    def add_products(self, folder: Path) -> list[str]:
        """Every Sentinel-2 product of a folder (SAFE folders or zips) under its tile's folder; the folder
        prefixes of the products."""
        added = []
        for record in LocalProvider(folder).scan().products:
            if record.family != "S2" or not record.tile_id:
                continue
            root = "L2/tiles" if record.product_type == "S2MSI2A" else "tiles"
            t = record.tile_id
            prefix = f"{root}/{int(t[:2])}/{t[2]}/{t[3:]}/{record.product_id}.SAFE/"
            for member, data in _members(Path(record.href), record.product_id):
                self.put(prefix + member, data)
            self.put(prefix.rstrip("/") + "_$folder$", b"")
            added.append(prefix)
        return added

    def start(self) -> GcsServer:
        self._httpd = start_server(_GcsHandler, owner=self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        return self

    def stop(self) -> None:
        stop_server(self._httpd)

    # ------------------------------------------------------------------ answers

    def listing(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.listings.append(dict(query))
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter")
        limit = int(query.get("maxResults", "1000"))
        start = base64.b64decode(query["pageToken"]).decode() if query.get("pageToken") else ""
        entries: list[tuple[str, bool]] = []  # (name or prefix, is a prefix)
        for name in sorted(n for n in self.objects if n.startswith(prefix) and n not in self.hide):
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter, 1)[0] + delimiter
                if not entries or entries[-1] != (folder, True):
                    entries.append((folder, True))
            else:
                entries.append((name, False))
        entries = [e for e in entries if e[0] > start]
        page, more = entries[:limit], len(entries) > limit
        out: dict[str, Any] = {"kind": "storage#objects"}
        if more:
            out["nextPageToken"] = base64.b64encode(page[-1][0].encode()).decode()
        prefixes = [n for n, is_prefix in page if is_prefix]
        items = [self.objects[n].resource(self.url, self.bucket, n in self.no_md5) for n, is_p in page if not is_p]
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            out["items"] = items
        return out

    def authorised(self, header: str | None) -> bool:
        return not self.require_token or (header or "").removeprefix("Bearer ") in self.issued

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants[grant] += 1
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = self._verified_claims(form.get("assertion", ""))
            if claims is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            if claims.get("scope") != SCOPE or not str(claims.get("aud", "")).endswith("/token"):
                return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience"}
        elif grant == "refresh_token":
            if self.refresh_tokens.get(form.get("refresh_token", "")) != (form.get("client_id"),
                                                                           form.get("client_secret")):  # fmt: skip
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        else:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        access = "ya29." + secrets.token_urlsafe(40)
        with self._lock:
            self.issued.add(access)
        return 200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}

    def _verified_claims(self, assertion: str) -> dict[str, Any] | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, signature = assertion.split(".")
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            key = self.accounts[claims["iss"]]
            key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), f"{head}.{body}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())  # fmt: skip
        except (ValueError, KeyError, InvalidSignature):
            return None
        return dict(claims)


def _members(path: Path, product_id: str) -> list[tuple[str, bytes]]:
    """(path inside the SAFE, bytes) of every file of a SAFE folder or zip."""
    if path.is_dir():
        return [(p.relative_to(path).as_posix(), p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()]
    out = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                out.append((info.filename.split("/", 1)[1], zf.read(info)))
    return out


class _GcsHandler(QuietHandler):
    owner: GcsServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlsplit(self.path).path != "/token":
            send_json(self, 404, error(404, "Not Found", "notFound"))
            return
        send_json(self, *self.owner.token(form))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        if not owner.authorised(self.headers.get("Authorization")):
            message = (f"Anonymous caller does not have storage.objects.list access to the Google Cloud Storage "
                       f"bucket {owner.bucket}.")  # fmt: skip
            send_json(self, 401, error(401, message, "required"))
            return
        head = f"/storage/v1/b/{owner.bucket}/o"
        if path == head:
            send_json(self, 200, owner.listing(query))
            return
        for base in (head + "/", f"/download{head}/"):
            if path.startswith(base):
                self._object(
                    unquote(path[len(base) :]), media=base.startswith("/download") or query.get("alt") == "media"
                )
                return
        send_json(self, 404, error(404, "Not Found", "notFound"))

    def _object(self, name: str, media: bool) -> None:
        owner = self.owner
        obj = owner.objects.get(name)
        if obj is None or name in owner.hide:
            send_json(self, 404, error(404, f"No such object: {owner.bucket}/{name}", "notFound"))
            return
        if not media:
            send_json(self, 200, obj.resource(owner.url, owner.bucket, name in owner.no_md5))
            return
        data = obj.data
        crc, md5 = _b64(google_crc32c.Checksum(data).digest()), _b64(hashlib.md5(data).digest())
        if name in owner.corrupt:
            data = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
        with owner._lock:
            owner.media[name] += 1
            drop = owner.drop_after.pop(name, None)
        headers = {"x-goog-hash": f"crc32c={crc},md5={md5}", "x-goog-generation": obj.generation,
                   "x-goog-metageneration": "1", "x-goog-stored-content-length": str(len(obj.data)),
                   "x-goog-storage-class": "STANDARD", "ETag": f'"{md5}"'}  # fmt: skip

        def counted(n: int) -> None:
            with owner._lock:
                owner.bytes_served[name] += n

        send_bytes(self, data, headers, drop_after=drop, counted=counted)


__all__ = ["BUCKET", "GcsServer", "StoredObject"]
