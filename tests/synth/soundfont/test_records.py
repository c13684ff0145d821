"""pdta records: fixed sizes, terminal records (EOP, EOI, EOS), monotonic bag and generator indices."""

from __future__ import annotations

from typing import Callable

import pytest

from mxfd.synth.soundfont import SoundFont, SoundFontError, soundfont_from_buffer
from mxfd.synth.soundfont.records import DTYPES
from tests.synth.soundfont.sf2writer import (
    Instrument,
    Preset,
    Sample,
    Zone,
    build,
    instrument,
    patch_record,
    sample_id,
    simple_font,
    tone,
)


def test_record_sizes_are_the_specs() -> None:
    assert {k: d.itemsize for k, d in DTYPES.items()} == {
        "phdr": 38,
        "pbag": 4,
        "pmod": 10,
        "pgen": 4,
        "inst": 22,
        "ibag": 4,
        "imod": 10,
        "igen": 4,
        "shdr": 46,
    }


def test_records_are_read_with_their_terminals(load: Callable[..., SoundFont]) -> None:
    font = load(simple_font())
    h = font.hydra
    assert (h.preset_count, h.instrument_count, h.sample_count) == (1, 1, 1)
    assert bytes(h.phdr[-1]["name"]).rstrip(b"\0") == b"EOP"
    assert int(h.phdr[-1]["bag"]) == len(h.pbag) - 1


@pytest.mark.parametrize(("chunk", "terminal"), [("phdr", "EOP"), ("inst", "EOI"), ("shdr", "EOS")])
def test_a_missing_terminal_record_is_an_error_naming_chunk_and_record(chunk: str, terminal: str) -> None:
    # two of everything, so the last real record stands where the terminal should be
    samples = [Sample("a", tone()), Sample("b", tone())]
    insts = [Instrument("i0", [Zone([sample_id(0)])]), Instrument("i1", [Zone([sample_id(1)])])]
    presets = [Preset("p0", 0, [Zone([instrument(0)])]), Preset("p1", 1, [Zone([instrument(1)])])]
    data = build(presets, insts, samples, no_terminal=[chunk])
    with pytest.raises(SoundFontError, match=rf"x.sf2: pdta/{chunk} record 1: missing terminal record '{terminal}'"):
        soundfont_from_buffer(data, "x.sf2")


@pytest.mark.parametrize("chunk", ["pgen", "pmod", "igen", "imod"])
def test_a_missing_terminal_generator_or_modulator_is_tolerated_and_counted(
    chunk: str, load: Callable[..., SoundFont]
) -> None:
    """FluidSynth accepts these ("for those non-terminal record cases, grr!"), so do we, and count it."""
    font = load(simple_font(no_terminal=[chunk]))
    assert font.counters()["missing_terminal"] == 1
    assert len(font.voice_zones(0, 0, 60, 100)) == 1


def test_a_chunk_that_is_not_whole_records() -> None:
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/pbag: size 10 is not a whole number of 4-byte records"):
        soundfont_from_buffer(simple_font(replace={"pbag": bytes(10)}), "x.sf2")


def test_bag_indices_that_fall_are_an_error_naming_the_record() -> None:
    samples = [Sample("a", tone())]
    insts = [Instrument("i0", [Zone([sample_id(0)])])]
    presets = [
        Preset("p0", 0, [Zone([instrument(0)]), Zone([instrument(0)])]),
        Preset("p1", 1, [Zone([instrument(0)])]),
    ]
    data = patch_record(build(presets, insts, samples), "phdr", 1, "bag", 1)  # fine: p0 has one zone now
    soundfont_from_buffer(data, "x.sf2")
    data = patch_record(build(presets, insts, samples), "pbag", 1, "gen", 0)
    data = patch_record(data, "pbag", 2, "gen", 0)
    data = patch_record(data, "pbag", 1, "gen", 2)
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/pbag record 2: gen index 0 is below the previous"):
        soundfont_from_buffer(data, "x.sf2")


def test_a_terminal_bag_past_the_generators_is_an_error() -> None:
    data = patch_record(simple_font(), "ibag", 1, "gen", 7)
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/ibag record 1: terminal bag has gen index 7, but igen"):
        soundfont_from_buffer(data, "x.sf2")


def test_a_terminal_preset_pointing_elsewhere_is_an_error() -> None:
    data = patch_record(simple_font(), "phdr", 1, "bag", 0)
    with pytest.raises(SoundFontError, match=r"pdta/phdr record 1: terminal record 'EOP' has bag index 0, but pbag"):
        soundfont_from_buffer(data, "x.sf2")
