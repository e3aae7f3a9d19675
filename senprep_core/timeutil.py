"""Time values: ISO 8601 times as the run files write them ("...Z"), read back as aware UTC datetimes,
and :class:`DateWindow`, an inclusive range of days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from senprep_core.errors import ConfigError


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


@dataclass(frozen=True)
class DateWindow:
    """An inclusive range of days (UTC)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(
                "dates",
                [self.start.isoformat(), self.end.isoformat()],
                "the end date must be on or after the start date; swap the two dates",
            )

    def contains(self, t: datetime) -> bool:
        """True when ``t`` falls on a day of the window (aware times are converted to UTC first)."""
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc)
        return self.start <= t.date() <= self.end

    @property
    def label(self) -> str:
        """``YYYYMMDD-YYYYMMDD``, e.g. ``20200501-20200801``."""
        return f"{self.start:%Y%m%d}-{self.end:%Y%m%d}"

    @property
    def days(self) -> int:
        """Number of days in the window (both ends included)."""
        return (self.end - self.start).days + 1
