"""The senprep Panel app. ``from app import SenprepApp`` embeds it in a notebook; state classes live in
:mod:`app.state` and never import Panel."""

from __future__ import annotations

from typing import Any

__all__ = ["SenprepApp"]


def __getattr__(name: str) -> Any:
    if name == "SenprepApp":
        from app.views.app import SenprepApp

        return SenprepApp
    raise AttributeError(name)
