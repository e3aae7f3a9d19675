"""Run parameters as the app edits them, and their round trip to senprep configs (legacy and modern)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import param

from senprep_core.bands import S1_LAYERS as s1_layers
from senprep_core.bands import S2_BANDS
from senprep_core.config import Config, Mode, parse_config
from senprep_core.fetch.credentials import CredentialFiles
from senprep_core.s1.speckle import FILTER_NAMES

SOURCES = ("demo", "local", "cdse", "cdse-stac", "earth-search", "planetary-computer", "dhus", "asf", "gcs")
#: Sources that need an account (the credential fields apply to them); asf's is a NASA Earthdata Login.
ACCOUNT_SOURCES = ("cdse", "cdse-stac", "dhus", "asf")
CALIBRATIONS = ("sigma0", "gamma0", "beta0")
POLARISATIONS = ("VV", "VH", "HH", "HV")
S1_LAYERS = tuple(s1_layers)  # the core's one list of S1 layers
DEFAULT_S2_BANDS = ["B02", "B03", "B04", "B08", "scl_cloud_shadow", "scl_cloud_high_proba"]


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)


PRODUCT_SUFFIXES = (".SAFE", ".zip", ".SAFE.zip")


def check_patch_size(value: int | None) -> str:
    """'' when ``value`` is a patch size a run takes, else why not (shown next to the field)."""
    low, high = RunOptions.param.patch_size.bounds
    if value is None or not low <= value <= high:
        return f"a patch is {low} to {high} px wide (got {value})"
    return ""


def check_overlap(value: int | None, patch_size: int) -> str:
    """'' when ``value`` is an overlap a run takes with ``patch_size``, else why not."""
    if value is None or value < 0:
        return f"the overlap is 0 px or more (got {value})"
    if value >= patch_size:
        return f"the overlap must be smaller than the patch size ({patch_size} px); got {value}"
    return ""


def check_window(start: object, end: object) -> str:
    """'' when [start, end] is a date window, else why not."""
    if start is None or end is None:
        return "type a date as YYYY-MM-DD or pick one"
    if _iso(end)[:10] < _iso(start)[:10]:
        return f"the end ({_iso(end)[:10]}) is before the start ({_iso(start)[:10]})"
    return ""


def check_local_folder(folder: str) -> str:
    """'' when ``folder`` holds Sentinel products (.SAFE folders or .zip files), else what is wrong."""
    if not folder.strip():
        return "give the folder that holds your .SAFE folders or .zip products"
    path = Path(folder).expanduser()
    if not path.is_dir():
        return f"{path} is not a folder on this machine"
    if not any(p.name.endswith(PRODUCT_SUFFIXES) for p in path.iterdir()):
        return f"{path} holds no .SAFE folder or .zip product"
    return ""


class RunOptions(param.Parameterized):
    """Everything but the ROI that a run needs: dates, mode, patches, S1/S2 options, source, output.

    Credentials are kept here only for the session: they never enter :meth:`config_dict`, saved
    configs, logs or outputs.
    """

    run_name = param.String(default="app-run", doc="run name (letters, digits, '-', '_')")
    date_windows = param.List(
        default=[("2021-05-01", "2022-08-31")], item_type=tuple, doc="inclusive [start, end] windows as ISO dates"
    )
    mode = param.Selector(default=Mode.S2_ONLY.value, objects=[m.value for m in Mode])
    patch_size = param.Integer(default=128, bounds=(16, 4096))
    overlap = param.Integer(default=0, bounds=(0, 4095))
    resolution = param.Number(default=10.0, bounds=(1.0, 1000.0))
    # Sentinel-2
    s2_level = param.Selector(default="L2A", objects=["L2A", "L1C"])
    s2_bands = param.ListSelector(default=list(DEFAULT_S2_BANDS), objects=list(S2_BANDS))
    cloud_max = param.Number(default=100.0, bounds=(0.0, 100.0), doc="tile cloud cover maximum (%)")
    roi_cloud_max = param.Number(
        default=None,
        allow_None=True,
        bounds=(0.0, 100.0),
        doc="ROI-level cloud maximum (%), from the SCL inside the ROI",
    )
    # Sentinel-1
    polarisations = param.ListSelector(default=["VV", "VH"], objects=list(POLARISATIONS))
    calibration = param.Selector(default="sigma0", objects=list(CALIBRATIONS))
    terrain_flattening = param.Boolean(default=False, doc="gamma0 terrain-flattened (Small 2011)")
    db = param.Boolean(default=True, doc="write backscatter in dB")
    speckle_filter = param.Selector(default="lee_sigma", objects=list(FILTER_NAMES))
    s1_layers = param.ListSelector(default=[], objects=list(S1_LAYERS))
    dem = param.String(default="", doc="DEM file or GLO-30 tile folder ('' = the demo DEM with the demo source)")
    # where from, where to
    source = param.Selector(default="demo", objects=list(SOURCES))
    local_folder = param.String(default="", doc="folder of .SAFE / .zip products for the 'local' source")
    username = param.String(default="", precedence=-1)
    password = param.String(default="", precedence=-1)
    outdir = param.String(default="senprep-app-runs", doc="folder the runs are written to")
    workers = param.Integer(
        default=1,
        bounds=(0, 64),
        doc="worker processes (0: in the app's own process; 1 or more keep the app responsive)",
    )

    # ----- date windows ----------------------------------------------------------------------

    def add_window(self, start: object | None = None, end: object | None = None) -> None:
        """Append a window (default: the 30 days after the last one)."""
        if start is None or end is None:
            last_end = date.fromisoformat(self.date_windows[-1][1]) if self.date_windows else date.today()
            start, end = last_end + timedelta(days=1), last_end + timedelta(days=30)
        self.date_windows = [*self.date_windows, (_iso(start), _iso(end))]

    def remove_window(self, index: int) -> None:
        """Drop the window at ``index`` (the last one cannot be removed: a run needs dates)."""
        if len(self.date_windows) > 1 and 0 <= index < len(self.date_windows):
            self.date_windows = [w for i, w in enumerate(self.date_windows) if i != index]

    def set_window(self, index: int, start: object, end: object) -> None:
        """Replace the window at ``index``."""
        windows = list(self.date_windows)
        windows[index] = (_iso(start), _iso(end))
        self.date_windows = windows

    # ----- config round trip ------------------------------------------------------------------

    @property
    def needs_s1(self) -> bool:
        return Mode(self.mode).needs_s1

    @property
    def needs_s2(self) -> bool:
        return Mode(self.mode).needs_s2

    def s1_bands(self) -> list[str]:
        """The S1 output bands these options ask for, e.g. ``sigma0_VV_dB``."""
        calibration = "gamma0T" if self.terrain_flattening else self.calibration
        suffix = "_dB" if self.db else ""
        return [f"{calibration}_{p}{suffix}" for p in self.polarisations] + list(self.s1_layers)

    def write_credentials(self) -> Path | None:
        """For a source that needs an account and a user name: a credentials file only this user can read,
        in a fresh private folder (remove it with :func:`forget_credentials`); None otherwise."""
        if self.source not in ACCOUNT_SOURCES or not self.username:
            return None
        folder = Path(tempfile.mkdtemp(prefix="senprep-credentials-"))  # mode 0700
        path = folder / "credentials.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"username": self.username, "password": self.password}, f)
        return path

    def source_spec(self) -> str:
        """The ``--source`` value: ``demo``, ``local:DIR`` or a remote catalogue's name."""
        if self.source == "local":
            return f"local:{self.local_folder}"
        return str(self.source)

    def config_dict(self, roi_geojson: dict[str, Any], demo_folder: Path | None = None) -> dict[str, Any]:
        """A modern-form config for these options over ``roi_geojson`` (no credentials in it)."""
        data: dict[str, Any] = {
            "name": self.run_name,
            "roi": roi_geojson,
            "dates": [list(w) for w in self.date_windows],
            "mode": self.mode,
            "grid": {"resolution": self.resolution},
            "patches": {"size": [self.patch_size] * 2, "overlap": [self.overlap] * 2},
            "sources": [self.source_spec()],
        }
        if self.needs_s2:
            data["sentinel2"] = {
                "level": self.s2_level,
                "bands": list(self.s2_bands),
                "cloud_cover": [0, self.cloud_max],
                "max_roi_cloud": self.roi_cloud_max,
            }
        if self.needs_s1:
            dem = self.dem or None
            if dem is None and self.source == "demo" and demo_folder is not None:
                from senprep_core.demo.catalog import DEMO_DEM

                dem = str(demo_folder / DEMO_DEM)
            data["sentinel1"] = {"bands": self.s1_bands(), "speckle_filter": self.speckle_filter, "dem": dem}
        return data

    def build_config(self, roi_geojson: dict[str, Any], demo_folder: Path | None = None) -> Config:
        """The validated :class:`Config` (raises :class:`~senprep_core.errors.ConfigError` naming the key)."""
        return parse_config(self.config_dict(roi_geojson, demo_folder))

    def apply_config(self, config: Config) -> None:
        """Set these options from a loaded config (its ROI is the caller's business)."""
        values: dict[str, Any] = {
            "run_name": config.name,
            "date_windows": [(w.start.isoformat(), w.end.isoformat()) for w in config.date_windows],
            "mode": config.mode.value,
            "patch_size": config.patch.size[1],
            "overlap": config.patch.overlap[1],
            "resolution": float(config.resolution),
            "s2_level": config.s2_level,
            "cloud_max": float(config.cloud_cover[1]),
            "roi_cloud_max": config.roi_cloud_threshold,  # the legacy cloud_mask_filtering's threshold too
        }
        if config.bands_s2:
            values["s2_bands"] = [b for b in config.bands_s2 if b in S2_BANDS]
        s1 = [b for b in config.bands_s1 if b not in S1_LAYERS]
        if s1:
            first = s1[0].split("_")
            values["calibration"] = first[0] if first[0] in CALIBRATIONS else "gamma0"
            values["terrain_flattening"] = first[0] == "gamma0T"
            values["db"] = s1[0].endswith("_dB")
            values["polarisations"] = [p for p in POLARISATIONS if any(f"_{p}" in b for b in s1)]
        values["s1_layers"] = [b for b in config.bands_s1 if b in S1_LAYERS]
        values["speckle_filter"] = config.s1.speckle_params()["name"]
        values["dem"] = config.s1.dem or ""
        if config.sources:
            source = config.sources[0]
            if source.startswith("local:"):
                values["source"], values["local_folder"] = "local", source[len("local:") :]
            elif source in SOURCES:
                values["source"] = source
        self.param.update(**values)


def credential_files(path: str | Path | None, sources: list[str] | tuple[str, ...]) -> CredentialFiles:
    """The credentials file written by :meth:`RunOptions.write_credentials` as the kind of account the sources
    use: NASA Earthdata Login for ``asf``, Copernicus otherwise."""
    if path is None:
        return CredentialFiles()
    if any(s.partition(":")[0] == "asf" for s in sources):
        return CredentialFiles(earthdata=str(path))
    return CredentialFiles(copernicus=str(path))


def forget_credentials(path: str | Path | None) -> None:
    """Remove a file (and its private folder) written by :meth:`RunOptions.write_credentials`."""
    if path is not None:
        shutil.rmtree(Path(path).parent, ignore_errors=True)
