"""ISO 8601 times as the run files write them ("...Z"), read back as aware UTC datetimes."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time ("Z", an offset, or naive, which is taken as UTC) as an aware UTC datetime.

    Raises ValueError for text that is not an ISO 8601 time.
    """
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when.astimezone(timezone.utc) if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def format_utc(when: datetime) -> str:
    """``when`` in UTC as ISO 8601 with a "Z" (naive datetimes are taken as UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
