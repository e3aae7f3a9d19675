"""The ``senprep`` command: run, download, plan, search, preview, status, export, inspect, demo.

The legacy flags (``--config``, ``--outdir``, ``--credentials``, ``--njobs``, ``--rebuild true|false``)
keep their meaning. Exit codes: 0 ok, 1 some products failed, 2 bad input, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from senprep_core import __version__
from senprep_core.cli_progress import EventPrinter
from senprep_core.errors import ConfigError, SenprepError, exit_code_for
from senprep_core.fetch.redact import scrub_known

log = logging.getLogger("senprep")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'")
    return value


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    return text


def _scheduler(text: str) -> str:
    from senprep_core.errors import ConfigError
    from senprep_core.executors import check_scheduler_address

    try:
        return check_scheduler_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.fix) from exc


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _load(path: str) -> Any:
    from senprep_core.config import load_config

    return load_config(path)


def _credentials(args: argparse.Namespace) -> Any:
    """The run's credentials files (:class:`~senprep_core.fetch.credentials.CredentialFiles`), each checked."""
    from senprep_core.fetch.credentials import CredentialFiles

    files = CredentialFiles(getattr(args, "credentials", None), getattr(args, "credentials_earthdata", None),
                            getattr(args, "credentials_google", None))  # fmt: skip
    flags = {"copernicus": "--credentials", "earthdata": "--credentials_earthdata", "google": "--credentials_google"}
    for kind, path in files.given().items():
        if not Path(path).is_file():
            raise ConfigError(flags[kind], path, "give the path of an existing credentials JSON file")
    return files


def _fetch_options(args: argparse.Namespace) -> Any:
    from senprep_core.fetch.cache import default_cache_dir
    from senprep_core.unit.fetching import FetchOptions

    cache = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_dir()
    return FetchOptions(cache, _credentials(args), roi_only=getattr(args, "fetch", "roi") == "roi",
                        verify=not getattr(args, "no_verify", False))  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    args.fetch_options = _fetch_options(args)
    executor = _executor(args)
    try:
        return _execute(config, Path(args.outdir), args.source, args, executor)
    finally:
        executor.close()


def _executor(args: argparse.Namespace) -> Any:
    from senprep_core.executors import make_executor

    return make_executor(args.njobs, args.scheduler, args.dask_workers)


class _Stop:
    """Ctrl-C (SIGINT) and SIGTERM (``docker stop``, ``scancel``, ``kill``) cancel a run the same way: the request
    is remembered (it survives an interrupt swallowed by a library), then the main thread is interrupted."""

    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for signum in self.STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.cancel.is_set():  # already stopping: let the clean-up finish (it is bounded)
            return
        self.signum = signum
        self.cancel.set()
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)


def _execute(config: Any, outdir: Path, sources: list[str] | None, args: argparse.Namespace, executor: Any) -> int:
    from senprep_core.outputs.run_folder import RunFolder
    from senprep_core.pipeline import run

    printer = EventPrinter(quiet=args.quiet, json_lines=args.log_json)
    with _Stop() as stop:
        try:
            result = run(config, outdir, sources=sources, rebuild=args.rebuild, callback=printer, cancel=stop.cancel,
                         executor=executor, fetch=getattr(args, "fetch_options", None),
                         wait=getattr(args, "wait", False), force=getattr(args, "force", False))  # fmt: skip
        except KeyboardInterrupt:
            stop.cancel.set()
            print("cancelled", file=sys.stderr)
            return stop.exit_code
    if result.status == "cancelled":
        print(f"cancelled: the units that finished are kept in {outdir}; run again to complete it", file=sys.stderr)
        return stop.exit_code
    if result.status == "empty":
        print(f"nothing to process: {result.plan.empty_reason()}", file=sys.stderr)
        return result.exit_code
    if result.stopped:
        print(f"stopped: {result.stopped}", file=sys.stderr)
    if not args.quiet:
        counts = RunFolder(outdir).read_report()["counts"]
        print(
            f"{result.status}: {counts['done']} products processed, {counts['skipped']} already complete, "
            f"{counts['rejected']} rejected, {counts['failed'] + counts['products_unreadable']} failed; "
            f"{counts['patches_written']} patches written, {counts['patches_skipped']} skipped -> {outdir}"
        )
        for failure in result.failed:
            message = scrub_known(str(failure.error_message))
            print(f"failed: {failure.unit_id}: {failure.error_type}: {message}", file=sys.stderr)
        for problem in result.plan.problems:
            print(f"failed: {problem.name}: {problem.error_type}: {problem.message}", file=sys.stderr)
    return result.exit_code


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch the whole products the run would use into ``--outdir``; process nothing."""
    from senprep_core.download import download

    config = _load(args.config)
    options = _fetch_options(args)
    printer = EventPrinter(quiet=args.quiet, json_lines=args.log_json)
    with _Stop() as stop:
        try:
            result = download(config, Path(args.outdir), args.source, options, printer, stop.cancel,
                              parallel=args.njobs, force=args.force)  # fmt: skip
        except KeyboardInterrupt:
            stop.cancel.set()
            print("cancelled", file=sys.stderr)
            return stop.exit_code
    if result.status == "cancelled":
        print(f"cancelled: the products already stored stay in {args.outdir}; run again to complete it",
              file=sys.stderr)  # fmt: skip
        return stop.exit_code
    if result.status == "empty":
        print(f"nothing to download: {result.plan.empty_reason()}", file=sys.stderr)
        return result.exit_code
    if not args.quiet:
        print(f"{result.status}: {result.count('downloaded')} products downloaded, {result.count('skipped')} already "
              f"complete, {len(result.failed)} failed -> {args.outdir}; process them with: senprep run --config "
              f"{args.config} --outdir OUT --source local:{args.outdir}")  # fmt: skip
    for failure in result.failed:
        print(f"failed: {failure.product_id}: {failure.error_type}: {scrub_known(str(failure.error_message))}",
              file=sys.stderr)  # fmt: skip
    for problem in result.plan.problems:
        print(f"failed: {problem.name}: {problem.error_type}: {problem.message}", file=sys.stderr)
    return result.exit_code


def cmd_search(args: argparse.Namespace) -> int:
    from senprep_core.catalog import open_provider
    from senprep_core.planning import resolve_sources, search, select_products

    config = _load(args.config)
    sources = resolve_sources(config, args.source)
    found, problems = search(config, [open_provider(s, credentials=_credentials(args)) for s in sources])
    products, dropped = select_products(config, found)
    if args.json:
        print(
            json.dumps(
                {
                    "products": [p.to_dict() for p in products],
                    "not_selected": [{"product_id": d.product_id, "reason": d.reason} for d in dropped],
                    "unreadable": [p.__dict__ for p in problems],
                },
                indent=2,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(products)} products for '{config.name}'")
    for column in ("product", "sensing time (UTC)", "level", "tile", "cloud %", "source", "online"):
        table.add_column(column)
    for p in products:
        cloud = "" if p.cloud_cover is None else f"{p.cloud_cover:.1f}"
        when = p.sensing_time.strftime("%Y-%m-%d %H:%M:%S")
        source = p.provider if not p.provider.startswith("local:") else "local"
        table.add_row(p.product_id, when, p.level, p.tile_id or "", cloud, source, "yes" if p.online else "no")
    Console().print(table)
    for d in dropped:
        print(f"not used: {d.product_id}: {d.reason}", file=sys.stderr)
    for problem in problems:
        print(f"unreadable: {problem.name}: {problem.message}", file=sys.stderr)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from senprep_core.catalog import open_provider
    from senprep_core.planning import resolve_sources
    from senprep_core.previews import find_products, preview, write_preview

    if not (args.png or args.tif):
        raise ConfigError("--png/--tif", None, "say where to write the preview: --png out.png and/or --tif out.tif")
    config = _load(args.config)
    providers = [open_provider(s, credentials=_credentials(args)) for s in resolve_sources(config, args.source)]
    view = preview(config, find_products(config, providers, args.product), args.bounds, args.resolution,
                   cache_dir=args.cache_dir, screen_px=args.width)  # fmt: skip
    written = write_preview(view, args.png, args.tif, args.rendering, args.s1_rendering)
    grid, names = view.grid, ", ".join(p.product_id for p in view.products)
    print(f"preview of {names}: {grid.width} x {grid.height} px at {grid.resolution:g} m (EPSG:{grid.epsg}) "
          f"in {view.seconds:.2f} s -> {', '.join(map(str, written))}")  # fmt: skip
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from senprep_core.product_names import parse_product_name
    from senprep_core.s2.product import open_s2_metadata

    path = Path(args.product)
    info = parse_product_name(path.name)
    if info is not None and info.family == "S1":
        from senprep_core.s1.metadata import read_s1_metadata

        data: dict[str, Any] = {"family": "S1", **read_s1_metadata(path).to_dict()}
    else:
        data = open_s2_metadata(path).to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        width = max(len(k) for k in data)
        for key, value in data.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            print(f"{key:<{width}}  {value}")
    return 0


def _demo_request(config: Any) -> Any:
    """What synthetic products ``config`` needs (its ROI, dates, sensors and how its mode pairs them)."""
    from senprep_core.config import Mode
    from senprep_core.demo.anywhere import DemoRequest

    s1_primary = config.mode in (Mode.S1_ONLY, Mode.S1_WITH_CLOSEST_S2, Mode.S1_MULTITEMPORAL)
    earlier = 1 if config.mode is Mode.S2_WITH_TWO_S1 else 0
    count = config.multitemporal.count
    if config.mode is Mode.S1_MULTITEMPORAL:
        earlier = 0 if count is None else count - 1
    s1_primary = s1_primary or not config.reads_s2
    return DemoRequest(config.roi.geometry, tuple(config.date_windows), config.s2_level, config.reads_s2,
                       config.reads_s1, "S1" if s1_primary else "S2", config.pair_direction, earlier,
                       config.mode is Mode.S1_MULTITEMPORAL and count is None)  # fmt: skip


def _demo_config(args: argparse.Namespace) -> int:
    """``senprep demo --config FILE``: synthetic products for the config's ROI and dates; the config run on them."""
    from senprep_core.demo.anywhere import build_demo_for
    from senprep_core.demo.publish import GENERATOR_VERSION
    from senprep_core.fetch.cache import default_cache_dir

    config = _load(args.config)
    folder = (
        Path(args.products) if args.products else default_cache_dir() / f"demo-config-products-v{GENERATOR_VERSION}"
    )
    paths = build_demo_for(_demo_request(config), folder)
    if not args.quiet:
        print(f"{len(paths)} synthetic products for '{config.name}' in {folder}", file=sys.stderr)
    executor = _executor(args)
    try:
        return _execute(config, Path(args.outdir) / config.name, [f"local:{folder}"], args, executor)
    finally:
        executor.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from senprep_core.config import parse_config
    from senprep_core.demo.catalog import build_demo_catalog, default_demo_folder, demo_runs

    if args.config:
        return _demo_config(args)
    folder = Path(args.products) if args.products else default_demo_folder()
    build_demo_catalog(folder)
    codes = []
    executor = _executor(args)  # one pool or Dask client serves both runs
    try:
        for name, data in demo_runs(folder):
            codes.append(_execute(parse_config(data), Path(args.outdir) / name, [f"local:{folder}"], args, executor))
            if codes[-1] == 130:
                break
    finally:
        executor.close()
    return max(codes)


def cmd_plan(args: argparse.Namespace) -> int:
    from senprep_core.planning import make_plan

    plan = make_plan(_load(args.config), args.source, credentials=_credentials(args), force=args.force)
    data = plan.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"{data['name']}: mode {data['mode']}, {len(data['units'])} units x {data['patches_per_unit']} patches")
    for unit in data["units"]:
        print(f"  {unit['kind']}  {unit['unit_id']}")
    for problem in data["unreadable_products"]:
        print(f"  unreadable: {problem['name']}: {problem['message']}", file=sys.stderr)
    for warning in data["warnings"]:
        print(f"  warning: {warning}", file=sys.stderr)
    if data["empty"]:
        print(f"  nothing to process: {data['empty']}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from senprep_core.outputs.run_folder import RunFolder

    folder = RunFolder(Path(args.outdir))
    summary = folder.summary().to_dict()
    if args.verify:
        report = folder.read_report()
        planned = [u["unit_id"] for u in report.get("plan", {}).get("units", [])]
        checks = folder.verify(planned, report.get("config_fingerprint"))
        summary["verified"] = {c.unit_id: {"state": c.state, "problems": list(c.problems)} for c in checks}
        redo = [c.unit_id for c in checks if not c.complete]
        summary["to_redo"] = sorted(set(summary["to_redo"]) | set(redo))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    counts = summary["counts"]
    print(f"{summary['name']}: {summary['status']} ({summary['outdir']})")
    if summary["holder"]:
        print(f"  in use by {summary['holder']}")
    print("  " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for unit in summary["failed"]:
        print(f"  failed: {unit['unit_id']}: {unit.get('error_type')}: {unit.get('error_message')}")
    for unit_id, check in sorted(summary.get("verified", {}).items()):
        if check["state"] != "complete":
            print(f"  {check['state']}: {unit_id}: {'; '.join(check['problems']) or 'no manifest'}")
    if summary["to_redo"]:
        print(f"  a re-run redoes {len(summary['to_redo'])} units: {', '.join(summary['to_redo'])}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from senprep_core.outputs.export import export_zip

    print(export_zip(Path(args.outdir), Path(args.output) if args.output else None))
    return 0


SOURCE_HELP = (
    "where products come from: cdse, cdse-stac, earth-search, planetary-computer, dhus, asf, gcs, local:DIR "
    "or demo (repeat for an ordered fallback)"
)
CREDENTIALS_HELP = (
    "credentials JSON {username, password[, sentinel_url_endpoint]} for cdse / cdse-stac / dhus "
    "(else SENPREP_CDSE_USERNAME / SENPREP_CDSE_PASSWORD or ~/.netrc)"
)
EARTHDATA_HELP = (
    "NASA Earthdata Login credentials JSON {username, password} for asf "
    "(else SENPREP_EARTHDATA_USERNAME / SENPREP_EARTHDATA_PASSWORD or the urs.earthdata.nasa.gov entry of ~/.netrc)"
)
GOOGLE_HELP = "Google Cloud service-account key, authorized-user file or token JSON for gcs (default: anonymous)"


def _credential_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--credentials", help=CREDENTIALS_HELP)
    p.add_argument("--credentials_earthdata", "--credentials-earthdata", dest="credentials_earthdata",
                   help=EARTHDATA_HELP)  # fmt: skip
    p.add_argument("--credentials_google", "--credentials-google", dest="credentials_google", help=GOOGLE_HELP)


def _add_download(sub: Any) -> None:
    """The ``download`` command: the whole products a run would use, into a folder."""
    p_down = sub.add_parser("download", help="fetch the whole products a run would use into a folder (no processing)")
    p_down.add_argument("--config", required=True, help="legacy or modern config (JSON/YAML)")
    then = "then: senprep run --source local:OUTDIR"
    p_down.add_argument("--outdir", required=True, type=_folder, help=f"folder for the products (.zip / .SAFE); {then}")
    p_down.add_argument("--source", action="append", help=SOURCE_HELP)
    _credential_flags(p_down)
    p_down.add_argument("--cache-dir", help="shared download cache (default: $SENPREP_CACHE or ~/.cache/senprep)")
    p_down.add_argument("--njobs", type=_positive, default=2, help="products downloaded at once (default 2)")
    p_down.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p_down.add_argument("--log-json", action="store_true", help="print progress events as JSON lines")
    p_down.add_argument("--force", action="store_true", help="plan a run larger than this machine would hold")
    p_down.set_defaults(func=cmd_download)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(prog="senprep", description="Sentinel-1/2 analysis-ready patches.")
    parser.add_argument("--version", action="version", version=f"senprep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    def common_run(p: argparse.ArgumentParser) -> None:
        p.add_argument("--njobs", type=_positive, default=1, help="products processed in parallel (processes)")
        p.add_argument("--scheduler", type=_scheduler, help="run the units on this Dask scheduler (tcp://host:8786)")
        p.add_argument("--dask-workers", type=_positive, help="run the units on a local Dask cluster of N workers")
        p.add_argument("--rebuild", type=_bool, nargs="?", const=True, default=False,
                       help="true: redo outputs that are already complete (default false)")  # fmt: skip
        p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
        p.add_argument("--log-json", action="store_true", help="print progress events as JSON lines")
        p.add_argument("--force", action="store_true",
                       help="run a plan larger than this machine's memory or the output disk would hold")  # fmt: skip
        p.add_argument("--wait", action="store_true",
                       help="when another run uses the output folder, wait for it (default: exit 2)")  # fmt: skip

    p_run = sub.add_parser("run", help="run a configuration")
    p_run.add_argument("--config", required=True, help="legacy or modern config (JSON/YAML)")
    p_run.add_argument("--outdir", required=True, type=_folder, help="run folder")
    p_run.add_argument("--source", action="append", help=SOURCE_HELP)
    _credential_flags(p_run)
    p_run.add_argument("--cache-dir", help="shared download cache (default: $SENPREP_CACHE or ~/.cache/senprep)")
    p_run.add_argument("--no-verify", action="store_true",
                       help="read local products without checking their files against manifest.safe")  # fmt: skip
    p_run.add_argument(
        "--fetch",
        choices=("roi", "product"),
        default="roi",
        help="roi: fetch only the files / COG windows the run reads (default); product: whole products",
    )
    common_run(p_run)
    p_run.set_defaults(func=cmd_run)

    _add_download(sub)

    def config_query(name: str, help_text: str, func: Any) -> None:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True)
        p.add_argument("--source", action="append", help=SOURCE_HELP)
        _credential_flags(p)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    config_query("plan", "print the work units a run would process", cmd_plan)
    sub.choices["plan"].add_argument("--force", action="store_true", help="plan a run larger than this machine holds")
    config_query("search", "list the products a run would use", cmd_search)

    p_preview = sub.add_parser("preview", help="what a run would make of a product or pair, as a picture / GeoTIFF")
    p_preview.add_argument("--config", required=True)
    p_preview.add_argument("--source", action="append", help=SOURCE_HELP)
    p_preview.add_argument("--credentials", help=CREDENTIALS_HELP)
    p_preview.add_argument("--product", action="append", required=True,
                           help="product id (from senprep search); give it twice for a pair")  # fmt: skip
    p_preview.add_argument("--png", help="write the picture here (a pair: one per product, _S2 / _S1 added)")
    p_preview.add_argument("--tif", help="write every layer as a GeoTIFF on the preview grid here")
    p_preview.add_argument("--bounds", type=float, nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                           help="area in degrees (default: the configuration's ROI)")  # fmt: skip
    p_preview.add_argument("--resolution", type=float, help="pixel size in metres (rounded up to a whole multiple "
                           "of the run's resolution; default: what --width pixels need)")  # fmt: skip
    p_preview.add_argument("--width", type=_positive, default=1000, help="screen pixels of the longer side")
    p_preview.add_argument("--rendering", choices=("true_colour", "false_colour"), default="true_colour",
                           help="S2 picture (clouds tinted magenta)")  # fmt: skip
    p_preview.add_argument("--s1-rendering", choices=("vv", "vh", "ratio", "composite"), default="vv",
                           help="S1 picture in dB (composite: VV, VH, VV/VH as red, green, blue)")  # fmt: skip
    p_preview.add_argument("--cache-dir", help="where fetched DEM tiles and orbit files are kept")
    p_preview.set_defaults(func=cmd_preview)

    p_status = sub.add_parser("status", help="summarise a run folder (run.json)")
    p_status.add_argument("outdir")
    p_status.add_argument("--json", action="store_true")
    p_status.add_argument("--verify", action="store_true",
                          help="check every unit's files against the sizes and checksums of its manifest")  # fmt: skip
    p_status.set_defaults(func=cmd_status)

    p_export = sub.add_parser("export", help="pack a run folder into one archive for sharing")
    p_export.add_argument("outdir")
    p_export.add_argument("--zip", action="store_true", required=True, help="write a zip archive (the only format)")
    p_export.add_argument("--output", help="archive path (default: OUTDIR.zip next to the run folder)")
    p_export.set_defaults(func=cmd_export)

    p_inspect = sub.add_parser("inspect", help="print a product's parsed metadata")
    p_inspect.add_argument("product", help=".SAFE folder, .zip or tile folder")
    p_inspect.add_argument("--json", action="store_true")
    p_inspect.set_defaults(func=cmd_inspect)

    p_demo = sub.add_parser("demo", help="run the embedded synthetic demo (no network)")
    p_demo.add_argument("--outdir", default="senprep-demo")
    p_demo.add_argument("--products", help="where to generate the demo products (default: the user cache)")
    p_demo.add_argument("--config", help="make synthetic products for this config's ROI and dates, and run it on them")
    common_run(p_demo)
    p_demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``senprep`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C cancels cleanly even when the shell started us with SIGINT ignored (background jobs)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except SenprepError as exc:
        print(f"senprep: error: {scrub_known(str(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
