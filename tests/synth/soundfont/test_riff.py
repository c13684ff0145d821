"""RIFF walking: the sfbk form, its three lists, and one clear SoundFontError for every structural defect."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

import pytest

from mxfd.synth.soundfont import SoundFont, SoundFontError, load_soundfont, soundfont_from_buffer
from mxfd.synth.soundfont.riff import HYDRA_CHUNKS, walk
from tests.synth.soundfont.sf2writer import build, simple_font


def test_a_valid_font_is_located_chunk_by_chunk() -> None:
    data = simple_font(version=(2, 4), info_name="tiny")
    layout = walk(data, "t.sf2")
    assert layout.version == (2, 4)
    assert layout.name == "tiny"
    assert layout.smpl is not None and layout.smpl.size == 2 * (200 + 46)
    assert set(layout.hydra) == set(HYDRA_CHUNKS)
    assert layout.hydra["phdr"].size == 2 * 38


def test_every_truncation_is_a_soundfont_error_naming_the_file() -> None:
    """Rule: a truncated file gives one clear error, never a traceback from somewhere inside."""
    data = simple_font()
    for n in range(0, len(data) - 1, 3):
        with pytest.raises(SoundFontError) as err:
            soundfont_from_buffer(data[:n], "cut.sf2")
        assert str(err.value).startswith("cut.sf2: ")
        assert "\n" not in str(err.value)


def test_a_cut_inside_the_sample_data_names_the_chunk() -> None:
    data = simple_font()
    layout = walk(data, "t.sf2")
    assert layout.smpl is not None
    with pytest.raises(SoundFontError, match=r"cut\.sf2: RIFF: truncated: the RIFF chunk claims"):
        soundfont_from_buffer(data[: layout.smpl.offset + 10], "cut.sf2")


def test_an_empty_file_and_a_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sf2"
    empty.write_bytes(b"")
    with pytest.raises(SoundFontError, match="empty.sf2: RIFF: truncated: the file is empty"):
        load_soundfont(empty)
    with pytest.raises(SoundFontError, match="nothere.sf2: file: No such file"):
        load_soundfont(tmp_path / "nothere.sf2")


def test_not_riff_and_wrong_form() -> None:
    data = simple_font()
    with pytest.raises(SoundFontError, match=r"not a RIFF file \(starts with b'RIFX'\)"):
        soundfont_from_buffer(b"RIFX" + data[4:], "x.sf2")
    with pytest.raises(SoundFontError, match=r"x.sf2: RIFF: RIFF form is b'WAVE', not b'sfbk'"):
        soundfont_from_buffer(simple_font(form=b"WAVE"), "x.sf2")


@pytest.mark.parametrize("lst", ["INFO", "sdta", "pdta"])
def test_a_missing_list_is_named(lst: str) -> None:
    with pytest.raises(SoundFontError, match=f"x.sf2: LIST {lst}: missing"):
        soundfont_from_buffer(simple_font(omit=[lst]), "x.sf2")


@pytest.mark.parametrize("chunk", HYDRA_CHUNKS)
def test_a_missing_pdta_chunk_is_named(chunk: str) -> None:
    with pytest.raises(SoundFontError, match=f"x.sf2: pdta/{chunk}: missing"):
        soundfont_from_buffer(simple_font(omit=[chunk]), "x.sf2")


def test_version_chunk_missing_bad_size_or_unknown_version() -> None:
    with pytest.raises(SoundFontError, match="INFO/ifil: missing"):
        soundfont_from_buffer(simple_font(omit=["ifil"]), "x.sf2")
    with pytest.raises(SoundFontError, match="INFO/ifil: version chunk is 6 bytes"):
        soundfont_from_buffer(simple_font(replace={"ifil": struct.pack("<HHH", 2, 1, 0)}), "x.sf2")
    with pytest.raises(SoundFontError, match="SoundFont version 1.0 is not"):
        soundfont_from_buffer(simple_font(version=(1, 0)), "x.sf2")


def test_a_sub_chunk_larger_than_its_list() -> None:
    data = bytearray(simple_font())
    layout = walk(bytes(data), "x.sf2")
    # grow pbag's size field past the end of pdta
    at = layout.hydra["pbag"].offset - 4
    data[at : at + 4] = struct.pack("<I", 10_000)
    with pytest.raises(SoundFontError, match=r"x.sf2: pdta/pbag: truncated: chunk claims 10000 bytes"):
        soundfont_from_buffer(bytes(data), "x.sf2")


def test_sample_records_without_sample_data() -> None:
    with pytest.raises(SoundFontError, match=r"sdta/smpl: missing: 1 samples are declared"):
        soundfont_from_buffer(simple_font(omit=["smpl"]), "x.sf2")


def test_unknown_top_level_chunks_are_skipped(load: Callable[..., SoundFont]) -> None:
    data = simple_font()
    body = data[12:] + b"JUNK" + struct.pack("<I", 3) + b"abc\0"
    font = load(b"RIFF" + struct.pack("<I", len(body) + 4) + b"sfbk" + body)
    assert [p.name for p in font.presets] == ["Test"]


def test_build_helper_round_trips_names() -> None:
    data = build([], [], [], info_name="empty")
    assert walk(data, "e.sf2").name == "empty"
