"""The run folder a session writes to: its default name, who holds it, and what to do when it already holds a run.

A run's folder is ``<output folder>/<run name>``. Each session's default run name carries a short id of the
session (``app-demo-3f9a1c``), so two browser tabs never share a folder unless a user types the same name.
Before a run starts, :func:`check_folder` looks at the folder: in use by another run (its lock is held), it
is refused and the holder named; holding a finished (or partial, cancelled...) run, the user chooses one of
:data:`FOLDER_CHOICES` (:class:`FolderState` keeps the question until then).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import param

from senprep_core.errors import OutputError
from senprep_core.outputs.run_folder import RunFolder

#: What a user may do with a folder that already holds a run: run into it again (complete units are kept and
#: verified, missing or damaged ones redone), delete that run first, or pick a new free name.
FOLDER_CHOICES = ("resume", "overwrite", "new_name")
FolderChoice = Literal["resume", "overwrite", "new_name"]
SHORT_ID_LENGTH = 6
#: The unit counts of a run report, as the question about a folder that holds a run lists them.
UNIT_STATES = ("done", "skipped", "rejected", "failed", "cancelled", "pending")
#: A numeric suffix a new name replaces rather than extends (``x-2`` -> ``x-3``, not ``x-2-2``).
_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d{1,3})$")


def new_session_id() -> str:
    """A fresh random session id (hex)."""
    return uuid.uuid4().hex[:16]


def short_session_id(session_id: str) -> str:
    """Six lower-case hex digits for a session: the id's own first ones when it is hex, else a hash of it
    (a session id from a URL may hold any character; a run name may not)."""
    if re.fullmatch(f"[0-9a-f]{{{SHORT_ID_LENGTH},}}", session_id):
        return session_id[:SHORT_ID_LENGTH]
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()[:SHORT_ID_LENGTH]


def session_run_name(base: str, session_id: str) -> str:
    """A session's default run name, ``<base>-<short session id>``."""
    return f"{base}-{short_session_id(session_id)}"


def free_name(parent: Path, name: str) -> str:
    """``name`` with the first numeric suffix (``-2``, ``-3``...) whose folder under ``parent`` does not exist."""
    match = _SUFFIX.match(name)
    base, n = (match["base"], int(match["n"]) + 1) if match else (name, 2)
    while (parent / f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


@dataclass(frozen=True)
class FolderCheck:
    """What a run would find in its folder.

    ``free``: nothing there yet (or an empty folder); ``busy``: another run holds it; ``run``: it holds a
    run that no one runs now; ``unusable``: it cannot take a run (a file, or a folder of other files).
    ``message`` says so in words ('' when free)."""

    state: Literal["free", "busy", "run", "unusable"]
    message: str = ""


def check_folder(outdir: Path) -> FolderCheck:
    """Look at a run folder before running into it (nothing is written)."""
    folder = RunFolder(outdir)
    try:
        folder.check_usable()
    except OutputError as exc:
        return FolderCheck("unusable", str(exc))
    if not folder.root.is_dir():
        return FolderCheck("free")
    holder = folder.holder()
    if holder is not None:
        return FolderCheck("busy", f"'{outdir.name}' is in use by {holder.describe()}: wait for it or choose "
                                   "another run name")  # fmt: skip
    if not folder.is_run():
        return FolderCheck("free")
    try:
        summary = folder.summary()
    except OutputError:
        return FolderCheck("run", f"'{outdir.name}' already holds a run: resume it, overwrite it or use a new name")
    counts = summary.counts
    units = ", ".join(f"{counts[k]} {k}" for k in UNIT_STATES if counts.get(k))
    detail = f" (units: {units}; {counts.get('patches_written', 0)} patches)" if units else ""
    return FolderCheck("run", f"'{outdir.name}' already holds a {summary.status} run{detail}: resume it, overwrite "
                              "it or use a new name")  # fmt: skip


class FolderState(param.Parameterized):
    """The session's word on its run folder, shown next to the run-name field.

    ``notice`` says why the last run did not start (the folder is in use: who holds it) or what the folder
    holds; ``pending`` is the folder waiting for a :data:`FOLDER_CHOICES` answer ('' when none)."""

    notice = param.String(default="", doc="who holds the run folder, or what it already holds ('' when nothing)")
    pending = param.String(default="", doc="the run folder awaiting a resume / overwrite / new-name choice")

    @property
    def asking(self) -> bool:
        """True while the user must choose what to do with a folder that holds a run."""
        return bool(self.pending)

    def refuse(self, message: str) -> None:
        """The run did not start: say why (no question stays open)."""
        self.param.update(notice=message, pending="")

    def ask(self, outdir: Path, message: str) -> None:
        """Ask what to do with ``outdir``, which holds a run."""
        self.param.update(notice=message, pending=str(outdir))

    def reset(self) -> None:
        """Nothing to say (a run started, or the run name / output folder changed)."""
        self.param.update(notice="", pending="")
