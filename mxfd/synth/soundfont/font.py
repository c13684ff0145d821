"""A loaded SoundFont: ``load_soundfont(path)`` and what it gives the synth.

Loading maps the file, walks its chunks (:mod:`.riff`), reads the preset
data as numpy records (:mod:`.records`), checks the sample headers against
the mapped sample data (:mod:`.sample_data`) and resolves every preset into
voice zones (:mod:`.zones`).  Nothing of the sample data is read: loading
FluidR3_GM (141 MB) touches about 150 kB of it.  A file that cannot be used
raises :class:`SoundFontError` with one line naming the file, the chunk and
the record; anything fixed on the way is in :attr:`SoundFont.report`.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Optional

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont import zone_cache
from mxfd.synth.soundfont.errors import LoadReport, SoundFontError
from mxfd.synth.soundfont.modulators import Modulator
from mxfd.synth.soundfont.records import Hydra, read_hydra
from mxfd.synth.soundfont.riff import Buffer, RiffLayout, walk
from mxfd.synth.soundfont.sample_data import Samples, read_samples
from mxfd.synth.soundfont.zones import KEYS, ZoneTables, build_tables, find_preset, select_voice_zones

#: The bank number of percussion presets (GM drum kits).
PERCUSSION_BANK: Final = 128


@dataclass(frozen=True)
class PresetInfo:
    """One preset a user can choose: what ``mxfd instruments`` lists."""

    bank: int
    program: int
    name: str


@dataclass(frozen=True)
class VoiceZone:
    """A readable copy of one row of the voice zone table (for tests, listings and the Python side)."""

    index: int
    sample: int
    sample_name: str
    sample_rate: float
    start: int
    end: int
    loop_start: int
    loop_end: int
    sample_mode: int
    root_key: int
    pitch_correction: float
    tuning: float
    attenuation: float
    exclusive_class: int
    link_sample: int
    sample_type: int
    key_range: tuple[int, int]
    vel_range: tuple[int, int]
    generators: npt.NDArray[np.float64]
    modulators: tuple[Modulator, ...]

    def generator(self, gid: int) -> float:
        return float(self.generators[gid])


class SoundFont:
    """A SoundFont 2 (or SF3) file loaded for playing: presets, voice zone tables and mapped sample data."""

    def __init__(
        self,
        path: str,
        layout: RiffLayout,
        hydra: Hydra,
        samples: Samples,
        tables: ZoneTables,
        names: list[str],
        report: LoadReport,
    ) -> None:
        self.path = path
        self.layout = layout
        self.hydra = hydra
        self.samples = samples
        self.tables = tables
        self.report = report
        keys = tables.preset_key.tolist()
        self.presets: tuple[PresetInfo, ...] = tuple(
            PresetInfo(k // KEYS, k % KEYS, n) for k, n in zip(keys, names, strict=True)
        )
        self._select = np.zeros(max(tables.max_voices, 1), np.int32)
        #: The file's identity when its sample data is a mapping of the file (``load_soundfont``), else None.
        self.file_status: Optional[os.stat_result] = None

    @property
    def name(self) -> str:
        """The font's name from its INFO list (INAM), else the file name."""
        return self.layout.name or os.path.basename(self.path)

    @property
    def version(self) -> tuple[int, int]:
        return self.layout.version

    def counters(self) -> dict[str, int]:
        """What was fixed while loading, by kind (see :class:`LoadReport`)."""
        return self.report.counters()

    def find_preset(self, bank: int, program: int) -> int:
        """The preset index of (bank, program), or -1 if the font has no such preset."""
        return find_preset(self.tables.preset_key, bank, program)

    def preset(self, bank: int, program: int) -> Optional[PresetInfo]:
        i = self.find_preset(bank, program)
        return self.presets[i] if i >= 0 else None

    def voice_zones(self, bank: int, program: int, key: int, velocity: int) -> list[VoiceZone]:
        """The voice zones a note starts on (bank, program), in FluidSynth's order; [] if there is no such preset."""
        p = self.find_preset(bank, program)
        if p < 0:
            return []
        t = self.tables
        n = select_voice_zones(t.key_index, t.key_zones, t.vel_lo, t.vel_hi, p, key, velocity, self._select)
        return [self.voice_zone(int(v)) for v in self._select[:n]]

    def voice_zone(self, v: int) -> VoiceZone:
        t = self.tables
        s = int(t.sample[v])
        first, count = int(t.mod_first[v]), int(t.mod_count[v])
        rows = range(first, first + count)
        mods = tuple(
            Modulator(
                int(t.mod_src[r]),
                int(t.mod_dest[r]),
                float(t.mod_amount[r]),
                int(t.mod_amount_src[r]),
                int(t.mod_transform[r]),
            )
            for r in rows
        )
        return VoiceZone(
            index=v,
            sample=s,
            sample_name=self.samples.names[s],
            sample_rate=float(t.sample_rate[v]),
            start=int(t.start[v]),
            end=int(t.end[v]),
            loop_start=int(t.loop_start[v]),
            loop_end=int(t.loop_end[v]),
            sample_mode=int(t.sample_mode[v]),
            root_key=int(t.root_key[v]),
            pitch_correction=float(t.pitch_correction[v]),
            tuning=float(t.tuning[v]),
            attenuation=float(t.attenuation[v]),
            exclusive_class=int(t.exclusive_class[v]),
            link_sample=int(t.link_sample[v]),
            sample_type=int(self.samples.type[s]),
            key_range=(int(t.key_lo[v]), int(t.key_hi[v])),
            vel_range=(int(t.vel_lo[v]), int(t.vel_hi[v])),
            generators=t.generators[v].copy(),
            modulators=mods,
        )


def load_soundfont(path: str | os.PathLike[str]) -> SoundFont:
    """Load the SoundFont at ``path``; raise SoundFontError (one line: file, chunk, record) if it cannot be used."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise SoundFontError(p, "RIFF", "truncated: the file is empty")
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            status = os.fstat(fh.fileno())
    except OSError as exc:
        raise SoundFontError(p, "file", exc.strerror or str(exc)) from exc
    # The kernel reads ahead around touched pages by default; voices touch samples here and there.
    if hasattr(buf, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        buf.madvise(mmap.MADV_RANDOM)
    font = soundfont_from_buffer(buf, p, zone_cache.cache_path(p, status))
    font.file_status = status
    return font


def soundfont_from_buffer(buf: Buffer, path: str, cached: Optional[Path] = None) -> SoundFont:
    """Load a SoundFont from the whole file's bytes (or mmap); ``path`` names it in messages.

    ``cached``: where the file's voice zone tables are kept (:mod:`.zone_cache`); None resolves them here.
    """
    report = LoadReport(path)
    layout = walk(buf, path)
    hydra = read_hydra(buf, layout, path, report)
    samples = read_samples(buf, layout, hydra, path, report)
    kept = zone_cache.load(cached, report) if cached is not None else None
    if kept is not None:
        tables, names = kept
    else:
        fixed = LoadReport(path)
        tables, names, _ = build_tables(hydra, samples, path, fixed)
        report.merge(fixed)
        if cached is not None:
            zone_cache.save(cached, tables, names, fixed)
    return SoundFont(path, layout, hydra, samples, tables, names, report)
