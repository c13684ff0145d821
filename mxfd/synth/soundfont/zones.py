"""Preset -> instrument -> sample zone resolution, precomputed into flat numpy tables at load time.

Theory of operation
-------------------
A preset is a list of preset zones, each naming an instrument; an
instrument is a list of instrument zones, each naming a sample; either list
may begin with a *global* zone (one that names nothing) whose generators
and modulators apply to every zone of the list that does not set its own.
A note (key, velocity) on a preset starts one voice for every pair of a
preset zone and one of its instrument's zones whose key and velocity ranges
both contain the note (FluidSynth intersects the two ranges; the ranges of
global zones are ignored, as FluidSynth ignores them).

Everything a voice needs from the font depends only on the zone pair, so
it is computed here once per pair, a *voice zone*, and stored as a struct
of arrays (one row per voice zone):

- the generator vector (section 8.5): each instrument generator is
  absolute, the local zone's value overriding the instrument global
  zone's, which overrides the default; each preset generator (local over
  preset global) is *added* to it.  Values stay in spec units and are not
  clamped after the sum: the voice engine adds the modulators first and
  clamps the result, as FluidSynth does.
- the sample window after the address offset generators (fine + 32768 x
  coarse), kept inside the sample as FluidSynth's
  ``fluid_rvoice_check_sample_sanity`` keeps it, and the sample mode
  (a loop shorter than 2 frames plays unlooped);
- root key (overridingRootKey, else the sample's), pitch correction,
  exclusive class, the stereo partner sample, the attenuation with
  FluidSynth's EMU factor;
- the voice's modulator list (defaults, instrument, preset merged by
  :func:`~mxfd.synth.soundfont.modulators.voice_modulators`), as a range of
  rows in one deduplicated modulator pool (itself a struct of arrays).

Zone selection is then array arithmetic: presets are sorted by
``bank * 128 + program`` (:func:`find_preset` is a binary search) and, for
each preset and key, a CSR index lists the voice zones whose key range
holds that key, in FluidSynth's start order (:func:`select_voice_zones`
checks the velocity).  These functions take only integers and numpy arrays
and hold no Python objects, because the next step compiles them with numba
and calls them inside the audio callback, where the interpreter may not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont import generators as g
from mxfd.synth.soundfont import units
from mxfd.synth.soundfont.errors import LoadReport, SoundFontError
from mxfd.synth.soundfont.generators import DEFAULTS, N_GENERATORS, PRESET_ADDITIVE, Gen
from mxfd.synth.soundfont.jit import compiled
from mxfd.synth.soundfont.modulators import (
    DEFAULT_MODULATORS,
    Modulator,
    imported,
    voice_modulators,
    zone_modulators,
)
from mxfd.synth.soundfont.records import Hydra, record_name
from mxfd.synth.soundfont.sample_data import GUARD_FRAMES, Samples

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Sample modes (sampleModes generator): 0 and 2 play once, 1 loops, 3 loops until the key is released.
UNLOOPED: Final = 0
LOOP_CONTINUOUS: Final = 1
LOOP_UNTIL_RELEASE: Final = 3
#: A loop shorter than this (frames) is not played as a loop (FluidSynth's FLUID_MIN_LOOP_SIZE).
MIN_LOOP_FRAMES: Final = 2
#: Key slots per preset in the key index.
KEYS: Final = 128

_COARSE: Final = 32768


@dataclass
class ParsedZone:
    """One zone of a preset or instrument as read from the file (after FluidSynth's ordering rules)."""

    values: F64  # generator values by id (only where `set`)
    set: npt.NDArray[np.bool_]
    key_range: tuple[int, int]
    vel_range: tuple[int, int]
    link: int  # instrument index (preset zone) or sample id (instrument zone); -1 for a global zone
    modulators: list[Modulator]


@dataclass(frozen=True)
class ParsedList:
    """A preset's or instrument's zones: its global zone (or None) and its local zones, in file order."""

    name: str
    global_zone: ParsedZone | None
    zones: list[ParsedZone]


def _parse_lists(
    hydra: Hydra,
    *,
    preset: bool,
    link_limit: int,
    path: str,
    report: LoadReport,
) -> list[ParsedList]:
    headers = hydra.phdr if preset else hydra.inst
    bags = hydra.pbag if preset else hydra.ibag
    gens = hydra.pgen if preset else hydra.igen
    mods = hydra.pmod if preset else hydra.imod
    gen_chunk, mod_chunk = ("pdta/pgen", "pdta/pmod") if preset else ("pdta/igen", "pdta/imod")
    terminal = Gen.INSTRUMENT if preset else Gen.SAMPLE_ID
    link_what = "instrument" if preset else "sampleID"
    link_limit_what = "instruments" if preset else "samples"

    opers: list[int] = gens["oper"].tolist()
    amounts: list[int] = gens["amount"].tolist()
    bag_gen: list[int] = bags["gen"].tolist()
    bag_mod: list[int] = bags["mod"].tolist()
    header_bag: list[int] = headers["bag"].tolist()
    mod_rows = mods.tolist()
    allowed = PRESET_ADDITIVE if preset else g.IS_VALUE
    out: list[ParsedList] = []

    for h in range(len(headers) - 1):
        name = record_name(bytes(headers[h]["name"]))
        global_zone: ParsedZone | None = None
        zones: list[ParsedZone] = []
        for b in range(header_bag[h], header_bag[h + 1]):
            values = np.zeros(N_GENERATORS, np.float64)
            is_set = np.zeros(N_GENERATORS, np.bool_)
            key_range = (0, 127)
            vel_range = (0, 127)
            link = -1
            level = 0
            g0, g1 = bag_gen[b], bag_gen[b + 1]
            for j in range(g0, g1):
                oper, amount = opers[j], amounts[j]
                if oper == Gen.KEY_RANGE or oper == Gen.VEL_RANGE:
                    lo, hi = amount & 0xFF, (amount >> 8) & 0xFF
                    if oper == Gen.KEY_RANGE and level == 0:
                        level, key_range = 1, (lo, hi)
                    elif oper == Gen.VEL_RANGE and level <= 1:
                        level, vel_range = 2, (lo, hi)
                    else:
                        report.fix(
                            "generator_misplaced",
                            gen_chunk,
                            j,
                            f"{name!r}: {g.name(oper)} after other generators (it must come first); ignored",
                        )
                    continue
                if oper == terminal:
                    link = amount & 0xFFFF
                    if link >= link_limit:
                        raise SoundFontError(
                            path,
                            gen_chunk,
                            f"{name!r}: {link_what} {link} is past the {link_limit} {link_limit_what} of the file",
                            record=j,
                        )
                    if j + 1 < g1:
                        report.fix(
                            "generator_misplaced",
                            gen_chunk,
                            j + 1,
                            f"{name!r}: {g1 - j - 1} generators after {link_what} (it must come last); ignored",
                        )
                    break
                level = 2
                if oper >= N_GENERATORS or g.GENERATORS[oper].kind == g.UNUSED:
                    report.fix("generator_unknown", gen_chunk, j, f"{name!r}: unknown generator {oper}; ignored")
                    continue
                if oper == Gen.INSTRUMENT:  # only the terminal of a preset zone; here, an instrument zone
                    report.fix(
                        "generator_invalid", gen_chunk, j, f"{name!r}: instrument in an instrument zone; ignored"
                    )
                    continue
                if not allowed[oper]:  # sampleID and the instrument-only generators, at preset level
                    report.fix(
                        "generator_not_in_preset",
                        gen_chunk,
                        j,
                        f"{name!r}: {g.name(oper)} is instrument-only; ignored at preset level",
                    )
                    continue
                value = float(amount)
                fixed = g.clamp(oper, value, preset=preset)
                if fixed != value:
                    report.fix(
                        "generator_clamped",
                        gen_chunk,
                        j,
                        f"{name!r}: {g.name(oper)} = {amount} is outside its range; clamped to {fixed:g}",
                    )
                values[oper] = fixed  # a duplicate replaces the earlier value, as FluidSynth does
                is_set[oper] = True

            zone_mods: list[Modulator] = []
            for m in range(bag_mod[b], bag_mod[b + 1]):
                src, dest, amount, amount_src, transform = mod_rows[m]
                mod, why = imported(src, dest, amount, amount_src, transform)
                if why:
                    report.fix("modulator_disabled", mod_chunk, m, f"{name!r}: {why}; modulator disabled")
                zone_mods.append(mod)
            kept, invalid, duplicate = zone_modulators(zone_mods)
            report.count("modulator_invalid", invalid)
            report.count("modulator_duplicate", duplicate)
            zone = ParsedZone(values, is_set, key_range, vel_range, link, kept)
            if link >= 0:
                zones.append(zone)
            elif b == header_bag[h]:
                global_zone = zone
            else:
                report.fix(
                    "global_zone_misplaced",
                    "pdta/pbag" if preset else "pdta/ibag",
                    b,
                    f"{name!r}: a zone without {link_what} that is not the first; ignored",
                )
        out.append(ParsedList(name, global_zone, zones))
    return out


@dataclass(frozen=True)
class ZoneTables:
    """The voice zones of a font and the indexes that select them; every field is a numpy array.

    Voice zone ``v``: ``generators[v]`` (float64, spec units, by generator id), ``sample[v]``,
    ``start/end/loop_start/loop_end[v]`` (frames into the sample data, ends exclusive),
    ``sample_mode[v]``, ``root_key[v]``, ``pitch_correction[v]`` (cents), ``tuning[v]`` (coarse x 100 +
    fine, cents), ``attenuation[v]`` (centibels, FluidSynth's 0.4 x initialAttenuation),
    ``exclusive_class[v]``, ``link_sample[v]`` (stereo partner, -1), ``sample_rate[v]``,
    ``key_lo/key_hi/vel_lo/vel_hi[v]``, ``preset[v]``, and its modulators, rows
    ``mod_first[v] : mod_first[v] + mod_count[v]`` of ``mod_src``, ``mod_dest``, ``mod_amount``,
    ``mod_amount_src`` and ``mod_transform`` (the source words as in the file).

    Preset ``p`` (sorted by bank, program): ``preset_key[p] = bank * 128 + program``, its voice zones
    ``vz_first[p] : vz_first[p + 1]``, and for key ``k`` the candidates
    ``key_zones[key_index[p * 128 + k] : key_index[p * 128 + k + 1]]``.
    """

    preset_key: I64
    vz_first: I64
    key_index: I64
    key_zones: I32
    generators: F64
    sample: I32
    start: I64
    end: I64
    loop_start: I64
    loop_end: I64
    sample_mode: I32
    root_key: I32
    pitch_correction: F64
    tuning: F64
    attenuation: F64
    exclusive_class: I32
    link_sample: I32
    sample_rate: F64
    key_lo: I32
    key_hi: I32
    vel_lo: I32
    vel_hi: I32
    preset: I32
    mod_first: I32
    mod_count: I32
    mod_src: I32
    mod_dest: I32
    mod_amount: F64
    mod_amount_src: I32
    mod_transform: I32

    @property
    def voice_zone_count(self) -> int:
        return len(self.sample)

    @property
    def max_voices(self) -> int:
        """The most voice zones one note can start: the size ``select_voice_zones`` needs for ``out``."""
        return int(np.diff(self.key_index).max()) if len(self.key_index) > 1 else 0


@compiled
def find_preset(preset_key: I64, bank: int, program: int) -> int:
    """The index of preset (bank, program) in the sorted table, or -1."""
    k = bank * KEYS + program
    i = np.searchsorted(preset_key, k)
    if i < len(preset_key) and preset_key[i] == k:
        return int(i)
    return -1


@compiled
def select_voice_zones(
    key_index: I64, key_zones: I32, vel_lo: I32, vel_hi: I32, preset: int, key: int, velocity: int, out: I32
) -> int:
    """Write into ``out`` the voice zones a note (key, velocity) starts on ``preset``; return how many.

    ``out`` must hold at least the longest candidate list (``ZoneTables.max_voices``); no allocation.
    """
    n = 0
    slot = preset * KEYS + key
    for i in range(key_index[slot], key_index[slot + 1]):
        v = key_zones[i]
        if vel_lo[v] <= velocity <= vel_hi[v]:
            out[n] = v
            n += 1
    return n


def _zone_matrix(zones: list[ParsedZone]) -> tuple[F64, npt.NDArray[np.bool_]]:
    values = np.zeros((len(zones) + 1, N_GENERATORS), np.float64)  # the last row: "no zone"
    is_set = np.zeros((len(zones) + 1, N_GENERATORS), np.bool_)
    for i, z in enumerate(zones):
        values[i], is_set[i] = z.values, z.set
    return values, is_set


def build_tables(hydra: Hydra, samples: Samples, path: str, report: LoadReport) -> tuple[ZoneTables, list[str], I64]:
    """Resolve every preset of the file into voice zones; also the preset names and (bank, program) keys in order."""
    instruments = _parse_lists(hydra, preset=False, link_limit=len(samples), path=path, report=report)
    presets = _parse_lists(hydra, preset=True, link_limit=len(instruments), path=path, report=report)

    # Instrument zones and preset zones, each in one list; a global zone's row or -1.
    izones: list[ParsedZone] = []
    inst_locals: list[range] = []  # rows of each instrument's local zones in izones
    inst_global: list[int] = []
    for inst in instruments:
        inst_global.append(len(izones) if inst.global_zone is not None else -1)
        if inst.global_zone is not None:
            izones.append(inst.global_zone)
        inst_locals.append(range(len(izones), len(izones) + len(inst.zones)))
        izones.extend(inst.zones)
    pzones: list[ParsedZone] = []
    phdr = hydra.phdr[:-1]
    banks: list[int] = phdr["bank"].tolist()
    programs: list[int] = phdr["program"].tolist()

    # FluidSynth lists presets sorted by bank and program; of two with the same numbers the first is used.
    order = sorted(range(len(presets)), key=lambda p: (banks[p], programs[p], p))
    kept: list[int] = []
    for p in order:
        if kept and (banks[kept[-1]], programs[kept[-1]]) == (banks[p], programs[p]):
            report.fix(
                "preset_duplicate",
                "pdta/phdr",
                p,
                f"{presets[p].name!r}: bank {banks[p]} program "
                f"{programs[p]} is already preset {presets[kept[-1]].name!r}; ignored",
            )
            continue
        kept.append(p)

    vz_izone: list[int] = []
    vz_iglobal: list[int] = []
    vz_pzone: list[int] = []
    vz_pglobal: list[int] = []
    vz_preset: list[int] = []
    vz_ranges: list[tuple[int, int, int, int]] = []
    vz_first = [0]
    no_zone = -1
    for rank, p in enumerate(kept):
        pl = presets[p]
        pglobal = no_zone
        if pl.global_zone is not None:
            pglobal = len(pzones)
            pzones.append(pl.global_zone)
        for pz in pl.zones:
            pi = len(pzones)
            pzones.append(pz)
            ii = pz.link
            for iz in inst_locals[ii]:
                z = izones[iz]
                if not samples.usable[z.link]:
                    continue
                lo = max(pz.key_range[0], z.key_range[0])
                hi = min(pz.key_range[1], z.key_range[1])
                vlo = max(pz.vel_range[0], z.vel_range[0])
                vhi = min(pz.vel_range[1], z.vel_range[1])
                if lo > hi or vlo > vhi:
                    continue  # the two ranges do not meet: no note can start this pair
                vz_izone.append(iz)
                vz_iglobal.append(inst_global[ii])
                vz_pzone.append(pi)
                vz_pglobal.append(pglobal)
                vz_preset.append(rank)
                vz_ranges.append((lo, hi, vlo, vhi))
        vz_first.append(len(vz_izone))

    n = len(vz_izone)
    # Merge per zone first (an instrument zone with its global zone, a preset zone with its), then gather
    # once per voice zone: this keeps the temporaries at the size of the zone lists, not of the voice zones.
    ivals, iset = _zone_matrix(izones)
    iglobal_of = np.full(len(izones) + 1, -1, np.int64)
    pvals, pset = _zone_matrix(pzones)
    pglobal_of = np.full(len(pzones) + 1, -1, np.int64)
    iglobal_of[np.array(vz_izone, np.int64)] = vz_iglobal
    pglobal_of[np.array(vz_pzone, np.int64)] = vz_pglobal
    # -1 indexes the last row, the "no zone" row of each matrix.
    inst_merged = np.where(iset, ivals, np.where(iset[iglobal_of], ivals[iglobal_of], DEFAULTS))
    preset_merged = np.where(pset, pvals, np.where(pset[pglobal_of], pvals[pglobal_of], 0.0)) * PRESET_ADDITIVE
    gens = np.take(inst_merged, np.array(vz_izone, np.int64), axis=0).reshape(n, N_GENERATORS)
    gens += np.take(preset_merged, np.array(vz_pzone, np.int64), axis=0).reshape(n, N_GENERATORS)
    del inst_merged, preset_merged, ivals, iset, pvals, pset

    sample = np.array([izones[i].link for i in vz_izone], np.int32)
    ranges = np.array(vz_ranges, np.int32).reshape(n, 4)
    key_lo, key_hi, vel_lo, vel_hi = (np.ascontiguousarray(ranges[:, c]) for c in range(4))

    start, end, loop_start, loop_end, mode = _sample_windows(gens, sample, samples, report)

    override = gens[:, Gen.OVERRIDING_ROOT_KEY]
    root_key = np.where(override >= 0, override, samples.original_key[sample]).astype(np.int32)
    pool, mod_first, mod_count = _modulator_pool(izones, pzones, vz_izone, vz_iglobal, vz_pzone, vz_pglobal)

    preset_key = np.array([banks[p] * KEYS + programs[p] for p in kept], np.int64)
    vz_first_a = np.array(vz_first, np.int64)
    preset_a = np.array(vz_preset, np.int32)
    key_index, key_zones = _key_index(len(kept), preset_a, key_lo, key_hi)

    tables = ZoneTables(
        preset_key=preset_key,
        vz_first=vz_first_a,
        key_index=key_index,
        key_zones=key_zones,
        generators=gens,
        sample=sample,
        start=start,
        end=end,
        loop_start=loop_start,
        loop_end=loop_end,
        sample_mode=mode,
        root_key=root_key,
        pitch_correction=samples.correction[sample].astype(np.float64),
        tuning=gens[:, Gen.COARSE_TUNE] * 100.0 + gens[:, Gen.FINE_TUNE],
        attenuation=gens[:, Gen.INITIAL_ATTENUATION] * units.EMU_ATTENUATION_FACTOR,
        exclusive_class=gens[:, Gen.EXCLUSIVE_CLASS].astype(np.int32),
        link_sample=samples.link[sample].astype(np.int32),
        sample_rate=samples.rate[sample].astype(np.float64),
        key_lo=key_lo,
        key_hi=key_hi,
        vel_lo=vel_lo,
        vel_hi=vel_hi,
        preset=preset_a,
        mod_first=mod_first,
        mod_count=mod_count,
        mod_src=np.array([m.src for m in pool], np.int32),
        mod_dest=np.array([m.dest for m in pool], np.int32),
        mod_amount=np.array([m.amount for m in pool], np.float64),
        mod_amount_src=np.array([m.amount_src for m in pool], np.int32),
        mod_transform=np.array([m.transform for m in pool], np.int32),
    )
    return tables, [presets[p].name for p in kept], preset_key


def _sample_windows(gens: F64, sample: I32, samples: Samples, report: LoadReport) -> tuple[I64, I64, I64, I64, I32]:
    """Each voice zone's playback window and loop after the offset generators, kept inside its sample."""

    def offset(fine: Gen, coarse: Gen) -> I64:
        return gens[:, fine].astype(np.int64) + _COARSE * gens[:, coarse].astype(np.int64)

    s_start = samples.start[sample]
    # FluidSynth loads each sample with its 46 guard frames and lets the window reach into them.
    limit = np.minimum(samples.end[sample] + GUARD_FRAMES, len(samples.data))
    start = np.clip(s_start + offset(Gen.START_ADDRS_OFFSET, Gen.START_ADDRS_COARSE_OFFSET), s_start, limit - 1)
    end = np.clip(samples.end[sample] + offset(Gen.END_ADDRS_OFFSET, Gen.END_ADDRS_COARSE_OFFSET), s_start, limit)
    start, end = np.minimum(start, end), np.maximum(start, end)
    loop_start = np.clip(
        samples.loop_start[sample] + offset(Gen.STARTLOOP_ADDRS_OFFSET, Gen.STARTLOOP_ADDRS_COARSE_OFFSET),
        s_start,
        limit,
    )
    loop_end = np.clip(
        samples.loop_end[sample] + offset(Gen.ENDLOOP_ADDRS_OFFSET, Gen.ENDLOOP_ADDRS_COARSE_OFFSET), s_start, limit
    )
    loop_start, loop_end = np.minimum(loop_start, loop_end), np.maximum(loop_start, loop_end)
    mode = gens[:, Gen.SAMPLE_MODES].astype(np.int32) & 3
    mode[mode == 2] = UNLOOPED  # 2 is "unused, no loop" (section 8.1.2 #54)
    short = (mode != UNLOOPED) & (loop_end - loop_start < MIN_LOOP_FRAMES)
    if short.any():
        report.count("loop_too_short", int(short.sum()))
        mode[short] = UNLOOPED
    empty = end - start < 1
    if empty.any():
        report.count("window_empty", int(empty.sum()))
    return start, end, loop_start, loop_end, mode


def _modulator_pool(
    izones: list[ParsedZone],
    pzones: list[ParsedZone],
    vz_izone: list[int],
    vz_iglobal: list[int],
    vz_pzone: list[int],
    vz_pglobal: list[int],
) -> tuple[list[Modulator], I32, I32]:
    """One pool of modulators shared by every voice zone with the same merged list; each zone's (first, count)."""

    def mods(zones: list[ParsedZone], i: int) -> list[Modulator]:
        return zones[i].modulators if i >= 0 else []

    pool: list[Modulator] = list(DEFAULT_MODULATORS)
    where: dict[tuple[Modulator, ...], int] = {tuple(DEFAULT_MODULATORS): 0}
    by_source: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    n = len(vz_izone)
    first = np.zeros(n, np.int32)
    count = np.full(n, len(DEFAULT_MODULATORS), np.int32)
    for v in range(n):
        parts = (vz_iglobal[v], vz_izone[v], vz_pglobal[v], vz_pzone[v])
        # Only zones that have modulators change the list; key the cache on those.
        key = (
            parts[0] if mods(izones, parts[0]) else -1,
            parts[1] if mods(izones, parts[1]) else -1,
            parts[2] if mods(pzones, parts[2]) else -1,
            parts[3] if mods(pzones, parts[3]) else -1,
        )
        if key == (-1, -1, -1, -1):
            continue
        hit = by_source.get(key)
        if hit is None:
            merged = tuple(
                voice_modulators(mods(izones, key[0]), mods(izones, key[1]), mods(pzones, key[2]), mods(pzones, key[3]))
            )
            at = where.get(merged)
            if at is None:
                at = len(pool)
                pool.extend(merged)
                where[merged] = at
            hit = by_source[key] = (at, len(merged))
        first[v], count[v] = hit
    return pool, first, count


def _key_index(n_presets: int, preset: I32, key_lo: I32, key_hi: I32) -> tuple[I64, I32]:
    """CSR index: for slot ``p * 128 + k`` the voice zones of preset ``p`` whose key range holds ``k``, in order."""
    span = (key_hi - key_lo + 1).astype(np.int64)
    vz = np.repeat(np.arange(len(preset), dtype=np.int32), span)
    within = np.arange(int(span.sum()), dtype=np.int64) - np.repeat(np.cumsum(span) - span, span)
    slot = preset[vz].astype(np.int64) * KEYS + key_lo[vz] + within
    order = np.lexsort((vz, slot))  # by slot, and by voice zone (FluidSynth's order) within a slot
    key_zones = vz[order].astype(np.int32)
    counts = np.bincount(slot, minlength=n_presets * KEYS)
    key_index = np.zeros(n_presets * KEYS + 1, np.int64)
    np.cumsum(counts, out=key_index[1:])
    return key_index, key_zones
