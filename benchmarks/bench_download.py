"""Download throughput against a throttled link: 1 connection vs the allowed 4.

The local file server (tests/servers/fileserver.py) emulates CDSE scaled down: a link of 40 MB/s shared
by all connections and 10 MB/s per connection (CDSE: 20 MB/s per connection, 4 connections). Four
32 MB random files (generated in a temporary folder) are fetched with HttpClient.download_many, MD5
verified, first with max_connections=1 (the peer: what a one-connection downloader gets), then with 4.
Target: >= 90 % of the link with 4 connections. Results: benchmarks/results/download.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MB = 1_000_000

if str(ROOT) not in sys.path:  # the file server lives in the test tree
    sys.path.insert(0, str(ROOT))


def make_files(folder: Path, count: int, size: int) -> dict[str, str]:
    """``count`` random files of ``size`` bytes; their MD5 digests by name."""
    digests = {}
    for i in range(count):
        data = os.urandom(size)
        name = f"product{i}.bin"
        (folder / name).write_bytes(data)
        digests[name] = hashlib.md5(data).hexdigest()
    return digests


def measure(server_root: Path, digests: dict[str, str], size: int, connections: int, args: argparse.Namespace) -> dict:
    """Download every file with ``connections`` connections; one result row."""
    from senprep_core.fetch.http import Checksum, DownloadJob, DownloadResult, HttpClient
    from tests.servers.fileserver import serve_files

    with (
        tempfile.TemporaryDirectory(prefix="bench-download-") as out,
        serve_files(server_root, rate_bps=args.conn_mbps * MB, link_bps=args.link_mbps * MB) as server,
    ):
        jobs = [
            DownloadJob(f"{server.url}/{name}", Path(out) / name, size=size, checksum=Checksum("md5", digest))
            for name, digest in digests.items()
        ]
        client = HttpClient(name="bench", max_connections=connections)
        began = time.perf_counter()
        results = client.download_many(jobs)
        seconds = time.perf_counter() - began
        client.close()
        failed = [str(r) for r in results if not isinstance(r, DownloadResult)]
        if failed:
            raise SystemExit(f"downloads failed: {failed}")
        total = size * len(jobs)
        rate = total / seconds
        return {
            "connections": connections,
            "files": len(jobs),
            "bytes": total,
            "seconds": round(seconds, 2),
            "throughput_mb_s": round(rate / MB, 2),
            "fraction_of_link": round(rate / (args.link_mbps * MB), 3),
            "server_bytes_served": server.total_bytes,
            "server_max_parallel_requests": server.max_active,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link-mbps", type=float, default=40.0, help="shared link rate, MB/s")
    parser.add_argument("--conn-mbps", type=float, default=10.0, help="per-connection rate, MB/s")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--connections", type=int, default=4, help="the allowed connections")
    args = parser.parse_args()

    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="bench-served-") as served:
        began = time.perf_counter()
        digests = make_files(Path(served), args.files, size)
        generation = time.perf_counter() - began
        rows = []
        for connections in (1, args.connections):
            row = measure(Path(served), digests, size, connections, args)
            print(json.dumps(row))
            rows.append(row)

    best = rows[-1]
    result = {
        "benchmark": "download",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "server": "tests/servers/fileserver.py on 127.0.0.1",
            "link_mb_s": args.link_mbps,
            "per_connection_mb_s": args.conn_mbps,
            "files": args.files,
            "file_mb": args.size_mb,
            "checksum": "md5, computed while streaming",
            "generation_s": round(generation, 2),
        },
        "targets": {"fraction_of_link_with_allowed_connections": ">= 0.9"},
        "rows": rows,
        "peer": {"what": "the same client with 1 connection", "fraction_of_link": rows[0]["fraction_of_link"]},
        "meets_target": best["fraction_of_link"] >= 0.9,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "download.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
