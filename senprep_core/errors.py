"""All senprep failures: one root class, one class per failure.

Each class also inherits the matching builtin so callers that catch ``ValueError``
or ``FileNotFoundError`` keep working. Messages say what was wrong and how to fix it.
Each class carries its CLI exit code (``exit_code``); :func:`exit_code_for` reads it.
"""

from __future__ import annotations


class SenprepError(Exception):
    """Root of every error senprep raises on purpose."""

    exit_code: int = 1


class ConfigError(SenprepError, ValueError):
    """A configuration value is wrong; the message names the key, the value and the fix."""

    exit_code = 2

    def __init__(self, key: str, value: object, fix: str) -> None:
        self.key = key
        self.value = value
        self.fix = fix
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"config key '{key}': {shown} is not valid: {fix}")


class InvalidROIError(ConfigError):
    """The region of interest cannot be used (not a polygon, self-intersecting, empty...)."""


class UnknownBandError(ConfigError):
    """A requested band name is not one senprep knows."""


class ProductNotFoundError(SenprepError, FileNotFoundError):
    """A product path does not exist or is not a Sentinel product."""

    exit_code = 2


class SourceError(SenprepError, ValueError):
    """A --source value cannot be used."""

    exit_code = 2


class MetadataError(SenprepError, ValueError):
    """A product's metadata XML is missing, malformed or lacks a required field."""


class CorruptProductError(SenprepError, OSError):
    """A product file is truncated, unreadable, or missing a band it should hold."""


class UnsafeArchiveError(CorruptProductError):
    """A zip archive holds an entry that would escape its folder (``../`` or absolute)."""


class NoDataInROIError(SenprepError, ValueError):
    """A product holds no valid pixel inside the ROI."""


class OutputError(SenprepError, OSError):
    """An output cannot be written (permissions, disk full, existing non-senprep folder)."""

    exit_code = 2


class DiskFullError(OutputError):
    """The disk holding the output folder is full, or too small for the planned output."""


class RunFolderBusyError(OutputError):
    """Another run holds the output folder's lock."""

    def __init__(self, folder: object, holder: str | None) -> None:
        self.folder = folder
        self.holder = holder
        who = holder or "another run"
        super().__init__(
            f"output folder {folder} is in use by {who}; wait for it to finish, add --wait to start when it "
            "does, or choose another --outdir"
        )


class WorkerLostError(SenprepError, RuntimeError):
    """The worker process running a unit died (killed, out of memory) more often than retries allow."""


class ExportError(OutputError):
    """A run folder cannot be exported: it is not a senprep run, or the archive cannot be written."""


class CancelledError(SenprepError):
    """The run was cancelled by the user."""

    exit_code = 130


class DEMError(SenprepError, ValueError):
    """A DEM cannot be used: missing, unreadable, or not covering the ROI (plus margin)."""


class GeoidError(SenprepError, OSError):
    """A geoid grid needed to turn DEM heights into ellipsoidal heights is not available."""

    exit_code = 2


class OrbitError(SenprepError, ValueError):
    """An orbit file is malformed or does not cover the product's acquisition time."""


class OutsideSceneError(NoDataInROIError):
    """The ROI does not overlap the product's image."""


class SnapError(SenprepError, RuntimeError):
    """ESA SNAP's gpt is missing or its graph failed."""


class CredentialsError(SenprepError, ValueError):
    """Credentials are missing, malformed, or rejected by the catalogue (the secret is never shown)."""

    exit_code = 2


class DownloadError(SenprepError, OSError):
    """A file could not be fetched after all retries (network, server errors, bad response)."""


class ChecksumError(DownloadError):
    """A downloaded file does not match the catalogue's checksum; it was discarded."""


class DiskSpaceError(DownloadError):
    """Not enough free disk space for a download; nothing was fetched."""

    exit_code = 2


class ProductOfflineError(DownloadError):
    """A product is in the long-term archive (offline) and was not restored in time."""


class PreviewError(SenprepError, ValueError):
    """A preview cannot be made as asked (its area, resolution, products or bands); the message says how to ask."""

    exit_code = 2


def exit_code_for(error: BaseException) -> int:
    """The CLI exit code for an error: 2 for bad input, 1 otherwise."""
    if isinstance(error, SenprepError):
        return error.exit_code
    return 1
