"""Zone resolution: the merge rule of section 8.5, key and velocity ranges, sample windows, exclusive classes."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from mxfd.synth.soundfont import SoundFont, SoundFontError, soundfont_from_buffer
from mxfd.synth.soundfont.generators import DEFAULTS, Gen
from mxfd.synth.soundfont.zones import LOOP_UNTIL_RELEASE, UNLOOPED, find_preset, select_voice_zones
from tests.synth.soundfont.sf2writer import (
    Instrument,
    Preset,
    Sample,
    Zone,
    build,
    instrument,
    key_range,
    sample_id,
    tone,
    vel_range,
)


def samples(n: int = 2) -> list[Sample]:
    return [Sample(f"s{i}", tone(400), key=60 + i, correction=-5 * i, loop=(100, 300)) for i in range(n)]


def test_section_8_5_instrument_absolute_preset_added(load: Callable[..., SoundFont]) -> None:
    """Rule 8.5: instrument local overrides instrument global; preset local overrides preset global; preset adds."""
    inst = Instrument(
        "I",
        [
            Zone([(Gen.INITIAL_ATTENUATION, 100), (Gen.PAN, 200), (Gen.ATTACK_VOL_ENV, -1200)]),  # global
            Zone([(Gen.INITIAL_ATTENUATION, 50), sample_id(0)]),
            Zone([sample_id(1)]),
        ],
    )
    preset = Preset(
        "P",
        0,
        [
            Zone([(Gen.COARSE_TUNE, 2), (Gen.INITIAL_ATTENUATION, 10), (Gen.INITIAL_FILTER_FC, -1000)]),  # global
            Zone([(Gen.INITIAL_ATTENUATION, 20), (Gen.ATTACK_VOL_ENV, 1200), instrument(0)]),
        ],
    )
    font = load(build([preset], [inst], samples()))
    a, b = font.voice_zones(0, 0, 60, 100)
    assert a.generator(Gen.INITIAL_ATTENUATION) == 50 + 20  # local instrument, plus local preset (not global 10)
    assert b.generator(Gen.INITIAL_ATTENUATION) == 100 + 20  # instrument global, plus local preset
    assert a.generator(Gen.PAN) == b.generator(Gen.PAN) == 200  # instrument global, preset adds nothing
    assert a.generator(Gen.COARSE_TUNE) == 2  # default 0 plus the preset global zone
    assert a.generator(Gen.INITIAL_FILTER_FC) == 13500 - 1000  # default plus preset global offset
    assert a.generator(Gen.ATTACK_VOL_ENV) == -1200 + 1200
    assert a.generator(Gen.SCALE_TUNING) == DEFAULTS[Gen.SCALE_TUNING]  # untouched: the default
    assert a.tuning == 200.0
    assert a.attenuation == pytest.approx(0.4 * 70)  # FluidSynth's EMU factor


def test_key_and_velocity_ranges_select_zones(load: Callable[..., SoundFont]) -> None:
    inst = Instrument(
        "I",
        [
            Zone([key_range(0, 60), vel_range(0, 63), sample_id(0)]),
            Zone([key_range(0, 60), vel_range(64, 127), sample_id(1)]),
            Zone([key_range(61, 127), sample_id(1)]),
        ],
    )
    preset = Preset("P", 0, [Zone([key_range(40, 80), instrument(0)])])
    font = load(build([preset], [inst], samples()))

    def names(key: int, vel: int) -> list[str]:
        return [v.sample_name for v in font.voice_zones(0, 0, key, vel)]

    assert names(50, 63) == ["s0"]
    assert names(50, 64) == ["s1"]
    assert names(70, 10) == ["s1"]
    assert names(39, 100) == [] and names(81, 100) == []  # outside the preset zone's range
    assert names(40, 1) == ["s0"] and names(80, 127) == ["s1"]
    assert font.voice_zones(0, 0, 50, 64)[0].key_range == (40, 60)  # the two ranges intersected


def test_overlapping_zones_all_start_in_file_order(load: Callable[..., SoundFont]) -> None:
    inst = Instrument("I", [Zone([sample_id(1)]), Zone([key_range(60, 60), sample_id(0)])])
    presets = [Preset("P", 0, [Zone([instrument(0)]), Zone([vel_range(100, 127), instrument(0)])])]
    font = load(build(presets, [inst], samples()))
    assert [v.sample_name for v in font.voice_zones(0, 0, 60, 100)] == ["s1", "s0", "s1", "s0"]
    assert [v.sample_name for v in font.voice_zones(0, 0, 61, 99)] == ["s1"]


def test_global_zone_ranges_are_ignored_and_a_late_global_zone_is_dropped(load: Callable[..., SoundFont]) -> None:
    """FluidSynth ignores key/velocity ranges in global zones; a zone without a link that is not first is dropped."""
    inst = Instrument("I", [Zone([key_range(0, 10), (Gen.PAN, 30)]), Zone([sample_id(0)]), Zone([(Gen.PAN, 99)])])
    font = load(build([Preset("P", 0, [Zone([instrument(0)])])], [inst], samples(1)))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.generator(Gen.PAN) == 30
    assert font.counters()["global_zone_misplaced"] == 1


def test_exclusive_classes(load: Callable[..., SoundFont]) -> None:
    """A closed hi-hat (42) and an open one (46) in one class, so one chokes the other; a kick in none."""
    kit = Instrument(
        "kit",
        [
            Zone([key_range(36, 36), sample_id(0)]),
            Zone([key_range(42, 42), (Gen.EXCLUSIVE_CLASS, 1), sample_id(1)]),
            Zone([key_range(46, 46), (Gen.EXCLUSIVE_CLASS, 1), sample_id(1)]),
        ],
    )
    font = load(build([Preset("Drums", 0, [Zone([instrument(0)])], bank=128)], [kit], samples()))
    assert [v.exclusive_class for v in font.voice_zones(128, 0, 36, 100)] == [0]
    assert [v.exclusive_class for v in font.voice_zones(128, 0, 42, 100)] == [1]
    assert [v.exclusive_class for v in font.voice_zones(128, 0, 46, 100)] == [1]
    assert font.voice_zones(0, 0, 42, 100) == []  # no such melodic preset


def test_sample_windows_after_offset_generators(load: Callable[..., SoundFont]) -> None:
    inst = Instrument(
        "I",
        [
            Zone(
                [
                    (Gen.START_ADDRS_OFFSET, 10),
                    (Gen.END_ADDRS_OFFSET, -20),
                    (Gen.STARTLOOP_ADDRS_OFFSET, 5),
                    (Gen.ENDLOOP_ADDRS_OFFSET, -7),
                    (Gen.SAMPLE_MODES, 3),
                    sample_id(1),
                ]
            ),
            Zone(
                [(Gen.START_ADDRS_COARSE_OFFSET, 1), (Gen.END_ADDRS_OFFSET, 500), (Gen.SAMPLE_MODES, 2), sample_id(1)]
            ),
            Zone([(Gen.STARTLOOP_ADDRS_OFFSET, 199), (Gen.SAMPLE_MODES, 1), sample_id(0)]),
        ],
    )
    font = load(build([Preset("P", 0, [Zone([instrument(0)])])], [inst], samples()))
    a, b, c = font.voice_zones(0, 0, 60, 100)
    s1 = 400 + 46  # the second sample starts after the first and its guard frames
    assert (a.start, a.end, a.loop_start, a.loop_end, a.sample_mode) == (
        s1 + 10,
        s1 + 380,
        s1 + 105,
        s1 + 293,
        LOOP_UNTIL_RELEASE,
    )
    # a positive endAddrsOffset is clamped to 0 (counted); a start past the end is kept inside the sample and its
    # 46 guard frames, then start and end are swapped, as FluidSynth's sample sanity check does
    assert (b.start, b.end, b.sample_mode) == (s1 + 400, s1 + 400 + 46 - 1, UNLOOPED)
    assert font.counters()["generator_clamped"] == 1
    # a loop shorter than 2 frames plays unlooped
    assert (c.loop_start, c.loop_end, c.sample_mode) == (299, 300, UNLOOPED)
    assert font.counters()["loop_too_short"] == 1


def test_root_key_tuning_and_pitch_correction(load: Callable[..., SoundFont]) -> None:
    inst = Instrument(
        "I",
        [
            Zone([(Gen.OVERRIDING_ROOT_KEY, 72), (Gen.COARSE_TUNE, 1), (Gen.FINE_TUNE, -20), sample_id(1)]),
            Zone([sample_id(1)]),
        ],
    )
    font = load(build([Preset("P", 0, [Zone([instrument(0)])])], [inst], samples()))
    a, b = font.voice_zones(0, 0, 60, 100)
    assert (a.root_key, a.tuning, a.pitch_correction) == (72, 80.0, -5.0)
    assert (b.root_key, b.tuning) == (61, 0.0)  # the sample's own key


def test_bad_links_are_errors_naming_the_record() -> None:
    data = build(
        [Preset("P", 0, [Zone([(Gen.PAN, 1), instrument(3)])])], [Instrument("I", [Zone([sample_id(0)])])], samples(1)
    )
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/pgen record 1: 'P': instrument 3 is past the 1 instruments"):
        soundfont_from_buffer(data, "x.sf2")
    data = build([Preset("P", 0, [Zone([instrument(0)])])], [Instrument("I", [Zone([sample_id(9)])])], samples(1))
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/igen record 0: 'I': sampleID 9 is past the 1 samples"):
        soundfont_from_buffer(data, "x.sf2")


def test_presets_sorted_and_duplicates_dropped(load: Callable[..., SoundFont]) -> None:
    inst = [Instrument("I", [Zone([sample_id(0)])])]
    presets = [
        Preset("b", 5, [Zone([instrument(0)])]),
        Preset("a", 1, [Zone([instrument(0)])], bank=128),
        Preset("c", 0, [Zone([instrument(0)])]),
        Preset("dup", 5, [Zone([instrument(0)])]),
    ]
    font = load(build(presets, inst, samples(1)))
    assert [(p.bank, p.program, p.name) for p in font.presets] == [(0, 0, "c"), (0, 5, "b"), (128, 1, "a")]
    assert font.counters()["preset_duplicate"] == 1
    assert font.preset(0, 5) is not None and font.preset(0, 5).name == "b"  # type: ignore[union-attr]
    assert font.find_preset(3, 3) == -1


def test_lookup_needs_only_arrays(load: Callable[..., SoundFont]) -> None:
    """The functions the compiled engine will call take integers and arrays and fill a preallocated buffer."""
    inst = Instrument("I", [Zone([vel_range(0, 63), sample_id(0)]), Zone([vel_range(64, 127), sample_id(1)])])
    font = load(build([Preset("P", 7, [Zone([instrument(0)])], bank=2)], [inst], samples()))
    t = font.tables
    out = np.full(t.max_voices, -1, np.int32)
    p = find_preset(t.preset_key, 2, 7)
    assert p == 0
    assert select_voice_zones(t.key_index, t.key_zones, t.vel_lo, t.vel_hi, p, 60, 100, out) == 1
    assert t.sample[out[0]] == 1
    first, count = t.mod_first[out[0]], t.mod_count[out[0]]
    assert count == 10 and list(t.mod_dest[first : first + count]) == [48, 8, 6, 6, 48, 17, 48, 16, 15, 52]


def reference_voice_zones(font: SoundFont, bank: int, program: int, key: int, vel: int) -> list[tuple[str, ...]]:
    """An independent, slow resolution from the raw records: (sample name, summed generators) per voice."""
    h = font.hydra

    def zones(headers: np.ndarray, bags: np.ndarray, gens: np.ndarray, index: int, link: int) -> list[dict[int, int]]:
        out = []
        for b in range(int(headers[index]["bag"]), int(headers[index + 1]["bag"])):
            z: dict[int, int] = {}
            for j in range(int(bags[b]["gen"]), int(bags[b + 1]["gen"])):
                z[int(gens[j]["oper"])] = int(gens[j]["amount"])
                if int(gens[j]["oper"]) == link:
                    break
            out.append(z)
        return out

    def in_range(z: dict[int, int], k: int, v: int) -> bool:
        kr = z.get(Gen.KEY_RANGE, 127 << 8) & 0xFFFF
        vr = z.get(Gen.VEL_RANGE, 127 << 8) & 0xFFFF
        return (kr & 0xFF) <= k <= (kr >> 8) and (vr & 0xFF) <= v <= (vr >> 8)

    p = [i for i in range(len(h.phdr) - 1) if (int(h.phdr[i]["bank"]), int(h.phdr[i]["program"])) == (bank, program)][0]
    pz = zones(h.phdr, h.pbag, h.pgen, p, Gen.INSTRUMENT)
    pglobal = pz.pop(0) if pz and Gen.INSTRUMENT not in pz[0] else {}
    result = []
    for z in pz:
        if Gen.INSTRUMENT not in z or not in_range(z, key, vel):
            continue
        iz = zones(h.inst, h.ibag, h.igen, z[Gen.INSTRUMENT], Gen.SAMPLE_ID)
        iglobal = iz.pop(0) if iz and Gen.SAMPLE_ID not in iz[0] else {}
        for i in iz:
            if Gen.SAMPLE_ID not in i or not in_range(i, key, vel) or not font.samples.usable[i[Gen.SAMPLE_ID]]:
                continue
            att = i.get(48, iglobal.get(48, 0)) + z.get(48, pglobal.get(48, 0))
            pan = i.get(17, iglobal.get(17, 0)) + z.get(17, pglobal.get(17, 0))
            fc = min(i.get(8, iglobal.get(8, 13500)), 13500) + z.get(8, pglobal.get(8, 0))  # clamped at load
            result.append((font.samples.names[i[Gen.SAMPLE_ID]], att, pan, fc))
    return result


@pytest.mark.parametrize("which", ["timgm", "fluidr3"])
def test_tables_agree_with_a_direct_reading_of_the_real_fonts(which: str, request: pytest.FixtureRequest) -> None:
    font: SoundFont = request.getfixturevalue(which)
    rng = np.random.default_rng(8)
    for preset in font.presets:
        for key, vel in zip(rng.integers(0, 128, 6), rng.integers(1, 128, 6), strict=True):
            got = [
                (v.sample_name, round(v.generator(48)), round(v.generator(17)), round(v.generator(8)))
                for v in font.voice_zones(preset.bank, preset.program, int(key), int(vel))
            ]
            assert got == reference_voice_zones(font, preset.bank, preset.program, int(key), int(vel)), (preset, key)
