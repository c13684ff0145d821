"""Sample data: memory-mapped smpl and sm24, sample header checks and fixes, stereo links, SF3 (Ogg Vorbis)."""

from __future__ import annotations

import io
import mmap
import struct
from typing import Callable

import numpy as np
import soundfile

from mxfd.synth.soundfont import SoundFont
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.sample_data import LEFT, MONO, OGG_VORBIS, RIGHT, ROM
from tests.synth.soundfont.sf2writer import (
    GUARD,
    Instrument,
    Preset,
    Sample,
    Zone,
    build,
    instrument,
    sample_id,
    simple_font,
    tone,
)


def one_sample_font(sample: Sample, *, extra: list[Sample] | None = None, **kw: object) -> bytes:
    return build(
        [Preset("P", 0, [Zone([instrument(0)])])],
        [Instrument("I", [Zone([(Gen.SAMPLE_MODES, 1), sample_id(0)])])],
        [sample, *(extra or [])],
        **kw,  # type: ignore[arg-type]
    )


def test_sample_data_is_a_view_onto_the_files_mmap(load: Callable[..., SoundFont]) -> None:
    """Rule: the sample data is memory-mapped, not copied."""
    font = load(simple_font())
    data = font.samples.data
    assert not data.flags.owndata and not data.flags.writeable
    base = data.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    assert len(data) == 200 + GUARD
    np.testing.assert_array_equal(font.samples.frames(0), tone().astype(np.float32) / 32768)


def test_24_bit_samples_combine_sm24(load: Callable[..., SoundFont]) -> None:
    font = load(simple_font(version=(2, 4), sm24=True))
    assert font.samples.low is not None
    low = np.array([(i * 7) & 0xFF for i in range(200)], np.int32)
    expected = ((tone().astype(np.int32) << 8) | low) / float(1 << 23)
    np.testing.assert_allclose(font.samples.frames(0), expected.astype(np.float32))


def test_sm24_in_an_older_version_or_of_the_wrong_size_is_ignored(load: Callable[..., SoundFont]) -> None:
    font = load(simple_font(version=(2, 1), sm24=True))
    assert font.samples.low is None and font.counters()["sm24_ignored"] == 1
    font = load(simple_font(version=(2, 4), sm24=True, replace={"sm24": bytes(10)}))
    assert font.samples.low is None and font.counters()["sm24_ignored"] == 1


def test_a_sample_past_the_data_is_unusable_and_named(load: Callable[..., SoundFont]) -> None:
    font = load(one_sample_font(Sample("far", tone(), start=0, end=10_000)))
    assert not font.samples.usable[0]
    assert font.voice_zones(0, 0, 60, 100) == []
    assert font.counters()["sample_unusable"] == 1
    assert any("pdta/shdr record 0: sample 'far' ends at 10000, past the 246 frames" in w for w in font.report.warnings)


def test_a_zero_length_sample_is_unusable(load: Callable[..., SoundFont]) -> None:
    font = load(one_sample_font(Sample("empty", tone(), start=20, end=20)))
    assert font.voice_zones(0, 0, 60, 100) == []
    assert "is empty (start 20, end 20)" in font.report.warnings[0]


def test_rom_samples_and_unknown_types_are_unusable(load: Callable[..., SoundFont]) -> None:
    font = load(one_sample_font(Sample("rom", tone(), type=ROM | MONO)))
    assert font.voice_zones(0, 0, 60, 100) == []
    font = load(one_sample_font(Sample("odd", tone(), type=0x40)))
    assert font.voice_zones(0, 0, 60, 100) == []
    assert font.counters()["sample_unusable"] == 1


def test_loop_points_outside_the_sample_are_fixed_and_counted(load: Callable[..., SoundFont]) -> None:
    font = load(one_sample_font(Sample("s", tone(), loop_abs=(150, 50))))
    assert (font.samples.loop_start[0], font.samples.loop_end[0]) == (50, 150)  # reversed: swapped
    font = load(one_sample_font(Sample("s", tone(), loop_abs=(5000, 6000))))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert (vz.loop_start, vz.loop_end) == (0, 200)  # to the sample's start and end
    assert font.counters()["loop_fixed"] == 2
    # a loop end a little past the end (into the guard frames) is kept, as FluidSynth keeps it
    font = load(one_sample_font(Sample("s", tone(), loop=(10, 210))))
    assert font.voice_zones(0, 0, 60, 100)[0].loop_end == 210
    assert "loop_fixed" not in font.counters()


def test_an_unpitched_sample_plays_at_key_60(load: Callable[..., SoundFont]) -> None:
    (vz,) = load(one_sample_font(Sample("s", tone(), key=255))).voice_zones(0, 0, 60, 100)
    assert vz.root_key == 60


def test_linked_stereo_samples(load: Callable[..., SoundFont]) -> None:
    samples = [Sample("L", tone(), type=LEFT, link=1), Sample("R", tone(), type=RIGHT, link=0)]
    zones = [Zone([(Gen.PAN, -500), sample_id(0)]), Zone([(Gen.PAN, 500), sample_id(1)])]
    font = load(build([Preset("P", 0, [Zone([instrument(0)])])], [Instrument("I", zones)], samples))
    left, right = font.voice_zones(0, 0, 60, 100)
    assert (left.sample_name, left.sample_type, left.link_sample, left.generator(Gen.PAN)) == ("L", LEFT, 1, -500)
    assert (right.sample_name, right.sample_type, right.link_sample, right.generator(Gen.PAN)) == ("R", RIGHT, 0, 500)
    assert font.counters() == {}


def test_a_broken_stereo_link_plays_alone_and_is_counted(load: Callable[..., SoundFont]) -> None:
    samples = [Sample("L", tone(), type=LEFT, link=7)]
    font = load(build([Preset("P", 0, [Zone([instrument(0)])])], [Instrument("I", [Zone([sample_id(0)])])], samples))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.link_sample == -1
    assert font.counters()["stereo_link"] == 1


def _vorbis(frames: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, frames, rate, format="OGG", subtype="VORBIS")
    return out.getvalue()


def test_sf3_vorbis_samples_are_decoded_at_load(load: Callable[..., SoundFont]) -> None:
    rate = 22050
    t = np.arange(4000) / rate
    a = (0.5 * np.sin(2 * np.pi * 441 * t)).astype(np.float32)
    b = (0.25 * np.sin(2 * np.pi * 882 * t[:3000])).astype(np.float32)
    ogg_a, ogg_b = _vorbis(a, rate), _vorbis(b, rate)
    smpl = ogg_a + ogg_b
    # SF3: start/end are byte offsets of each stream, loops are relative to the decoded sample
    s_a = Sample(
        "a", np.zeros(0, np.int16), rate=rate, type=MONO | OGG_VORBIS, start=0, end=len(ogg_a), loop_abs=(100, 3900)
    )
    s_b = Sample(
        "b",
        np.zeros(0, np.int16),
        rate=rate,
        type=MONO | OGG_VORBIS,
        start=len(ogg_a),
        end=len(smpl),
        loop_abs=(0, 3000),
    )
    data = build(
        [Preset("P", 0, [Zone([instrument(0)])])],
        [Instrument("I", [Zone([(Gen.SAMPLE_MODES, 1), sample_id(0)]), Zone([sample_id(1)])])],
        [s_a, s_b],
        version=(3, 1),
        replace={"smpl": smpl},
    )
    font = load(data, "font.sf3")
    samples = font.samples
    assert samples.compressed
    assert samples.end[0] - samples.start[0] == 4000
    assert samples.end[1] - samples.start[1] == 3000
    assert samples.start[1] == 4000 + GUARD  # laid out like smpl: each sample then 46 zero frames
    assert (samples.loop_start[0], samples.loop_end[0]) == (100, 3900)
    assert (samples.loop_start[1], samples.loop_end[1]) == (samples.start[1], samples.start[1] + 3000)
    for s, ref in ((0, a), (1, b)):
        got = samples.frames(s)
        assert np.corrcoef(got, ref)[0, 1] > 0.99  # lossy, but the same tone
    assert len(font.voice_zones(0, 0, 60, 100)) == 2


def test_a_vorbis_stream_that_does_not_decode_makes_its_sample_unusable(load: Callable[..., SoundFont]) -> None:
    junk = b"OggS" + bytes(200)
    s = Sample("bad", np.zeros(0, np.int16), type=MONO | OGG_VORBIS, start=0, end=len(junk), loop_abs=(0, 0))
    data = build(
        [Preset("P", 0, [Zone([instrument(0)])])],
        [Instrument("I", [Zone([sample_id(0)])])],
        [s],
        version=(3, 1),
        replace={"smpl": junk},
    )
    font = load(data, "bad.sf3")
    assert font.voice_zones(0, 0, 60, 100) == []
    assert "does not decode" in font.report.warnings[0]


def test_odd_sized_sample_data_is_counted(load: Callable[..., SoundFont]) -> None:
    smpl = tone().astype("<i2").tobytes() + bytes(2 * GUARD) + b"\x01"
    font = load(simple_font(replace={"smpl": smpl}))
    assert font.counters()["odd_sample_data"] == 1
    assert struct.calcsize("<h") == 2


def test_a_zero_sample_rate_is_unusable_and_a_typeless_sample_is_mono(load: Callable[..., SoundFont]) -> None:
    font = load(one_sample_font(Sample("s", tone(), rate=0)))
    assert font.voice_zones(0, 0, 60, 100) == []
    assert "has sample rate 0" in font.report.warnings[0]
    font = load(one_sample_font(Sample("s", tone(), type=0)))
    (vz,) = font.voice_zones(0, 0, 60, 100)
    assert vz.sample_type == MONO and font.counters()["sample_type"] == 1
