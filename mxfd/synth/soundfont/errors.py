"""What a SoundFont load reports: one exception for a file that cannot be used, counters for what was fixed.

A file is refused with a :class:`SoundFontError` whose one-line message names
the file, the chunk and, where there is one, the record index, so a user (or
the daemon's log) can find the bad byte.  Defects the SoundFont 2.04 spec or
FluidSynth tolerate (an absurd generator value, an unknown generator, loop
points outside their sample) are fixed as they do, counted in a
:class:`LoadReport` and described in one line each.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

# Warnings kept verbatim; past this only the counters grow, so a broken
# 100 MB file cannot fill memory with messages.
MAX_WARNINGS = 200


class SoundFontError(ValueError):
    """A SoundFont file that cannot be loaded; the message is one line naming file, chunk and record."""

    def __init__(self, path: str, chunk: str, message: str, record: Optional[int] = None) -> None:
        where = f"{chunk} record {record}" if record is not None else chunk
        super().__init__(f"{path}: {where}: {message}")
        self.path = path
        self.chunk = chunk
        self.record = record


class LoadReport:
    """Counters and one-line warnings for the defects fixed while loading one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []

    def fix(self, kind: str, chunk: str, record: Optional[int], message: str) -> None:
        """Count one fixed defect of ``kind`` and keep its description (up to :data:`MAX_WARNINGS`)."""
        self.counts[kind] += 1
        if len(self.warnings) < MAX_WARNINGS:
            where = f"{chunk} record {record}" if record is not None else chunk
            self.warnings.append(f"{self.path}: {where}: {message}")

    def count(self, kind: str, n: int = 1) -> None:
        """Count ``n`` defects of ``kind`` too many to describe one by one."""
        if n:
            self.counts[kind] += n

    def merge(self, other: LoadReport) -> None:
        """Add what ``other`` counted and described (up to :data:`MAX_WARNINGS` descriptions in all)."""
        self.counts.update(other.counts)
        self.warnings.extend(other.warnings[: max(MAX_WARNINGS - len(self.warnings), 0)])

    def counters(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
