"""The generator table of SoundFont 2.04 section 8.1, clamping of absurd values, unknown and misplaced generators."""

from __future__ import annotations

from typing import Callable

from mxfd.synth.soundfont import SoundFont
from mxfd.synth.soundfont.generators import DEFAULTS, GENERATORS, N_GENERATORS, PRESET_ADDITIVE, Gen, clamp, name
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


def font_with(inst_gens: list[tuple[int, int]], preset_gens: list[tuple[int, int]] = ()) -> bytes:  # type: ignore[assignment]
    return build(
        [Preset("P", 0, [Zone([*preset_gens, instrument(0)])])],
        [Instrument("I", [Zone([*inst_gens, sample_id(0)])])],
        [Sample("s", tone(), loop=(10, 190))],
    )


def test_the_table_has_all_61_generators_with_the_specs_names() -> None:
    assert N_GENERATORS == len(GENERATORS) == 61
    assert [name(i) for i in (0, 8, 17, 34, 41, 43, 48, 53, 54, 56, 57, 58, 60)] == [
        "startAddrsOffset",
        "initialFilterFc",
        "pan",
        "attackVolEnv",
        "instrument",
        "keyRange",
        "initialAttenuation",
        "sampleID",
        "sampleModes",
        "scaleTuning",
        "exclusiveClass",
        "overridingRootKey",
        "endOper",
    ]
    assert name(99) == "generator 99"


def test_defaults_per_section_8_1_3() -> None:
    assert DEFAULTS[Gen.INITIAL_FILTER_FC] == 13500
    assert DEFAULTS[Gen.SCALE_TUNING] == 100
    assert DEFAULTS[Gen.DELAY_VOL_ENV] == DEFAULTS[Gen.RELEASE_VOL_ENV] == -12000
    assert DEFAULTS[Gen.SUSTAIN_VOL_ENV] == 0
    assert DEFAULTS[Gen.KEYNUM] == DEFAULTS[Gen.VELOCITY] == DEFAULTS[Gen.OVERRIDING_ROOT_KEY] == -1


def test_which_generators_are_added_at_preset_level() -> None:
    """Rule 8.5: ranges, links and the instrument-only generators are not additive at preset level."""
    not_additive = {int(i) for i in range(N_GENERATORS) if not PRESET_ADDITIVE[i]}
    instrument_only = {0, 1, 2, 3, 4, 12, 45, 46, 47, 50, 53, 54, 57, 58}
    links_and_ranges = {41, 43, 44}
    unused = {14, 18, 19, 20, 42, 49, 55, 59, 60}
    assert not_additive == instrument_only | links_and_ranges | unused


def test_clamp_to_the_specs_range() -> None:
    assert clamp(Gen.INITIAL_ATTENUATION, 2000, preset=False) == 1440
    assert clamp(Gen.INITIAL_ATTENUATION, -5, preset=False) == 0
    assert clamp(Gen.INITIAL_ATTENUATION, -2000, preset=True) == -1440  # an offset may span the range
    assert clamp(Gen.COARSE_TUNE, 200, preset=False) == 120
    assert clamp(Gen.INITIAL_FILTER_FC, 20000, preset=False) == 13500
    assert clamp(Gen.ATTACK_VOL_ENV, -32768, preset=False) == -32768  # FluidSynth: exactly zero seconds
    assert clamp(Gen.ATTACK_VOL_ENV, -20000, preset=False) == -12000
    assert clamp(Gen.OVERRIDING_ROOT_KEY, -1, preset=False) == -1  # "not set"
    assert clamp(Gen.START_ADDRS_OFFSET, 1_000_000, preset=False) == 1_000_000  # offsets are unbounded


def test_an_absurd_value_is_clamped_and_counted(load: Callable[..., SoundFont]) -> None:
    font = load(font_with([(Gen.INITIAL_ATTENUATION, 30000), (Gen.PAN, -900)]))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.generator(Gen.INITIAL_ATTENUATION) == 1440
    assert vz.generator(Gen.PAN) == -500
    assert font.counters()["generator_clamped"] == 2
    assert any(
        "pdta/igen record 0: 'I': initialAttenuation = 30000 is outside its range; clamped to 1440" in w
        for w in font.report.warnings
    )


def test_unknown_generators_are_ignored_and_counted(load: Callable[..., SoundFont]) -> None:
    font = load(font_with([(99, 5), (Gen.UNUSED1, 3), (Gen.PAN, 100)], [(Gen.RESERVED2, 1)]))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.generator(Gen.PAN) == 100
    assert font.counters()["generator_unknown"] == 3


def test_instrument_only_generators_are_ignored_at_preset_level(load: Callable[..., SoundFont]) -> None:
    font = load(font_with([], [(Gen.EXCLUSIVE_CLASS, 3), (Gen.OVERRIDING_ROOT_KEY, 40), (Gen.START_ADDRS_OFFSET, 9)]))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.exclusive_class == 0 and vz.root_key == 60 and vz.start == 0
    assert font.counters()["generator_not_in_preset"] == 3


def test_ranges_must_come_first_and_the_link_last(load: Callable[..., SoundFont]) -> None:
    """FluidSynth's ordering rules: keyRange first, velRange only after it, nothing after sampleID."""
    data = build(
        [Preset("P", 0, [Zone([instrument(0)])])],
        [Instrument("I", [Zone([(Gen.PAN, 10), key_range(60, 60), vel_range(1, 2), sample_id(0), (Gen.PAN, 99)])])],
        [Sample("s", tone())],
    )
    font = load(data)
    (vz,) = font.voice_zones(0, 0, 30, 100)  # the misplaced ranges were ignored
    assert vz.key_range == (0, 127) and vz.vel_range == (0, 127)
    assert vz.generator(Gen.PAN) == 10  # the pan after sampleID was ignored
    assert font.counters()["generator_misplaced"] == 3


def test_a_duplicate_generator_replaces_the_earlier_one(load: Callable[..., SoundFont]) -> None:
    font = load(font_with([(Gen.PAN, 10), (Gen.PAN, 20)]))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.generator(Gen.PAN) == 20


def test_links_at_the_wrong_level_are_ignored_and_counted(load: Callable[..., SoundFont]) -> None:
    font = load(font_with([(Gen.INSTRUMENT, 0), (Gen.PAN, 5)], [(Gen.SAMPLE_ID, 0)]))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.generator(Gen.PAN) == 5
    assert font.counters()["generator_invalid"] == 1
    assert font.counters()["generator_not_in_preset"] == 1
