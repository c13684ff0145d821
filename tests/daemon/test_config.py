"""The daemon config: defaults, validation that names key, value and what is allowed, overrides."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from mxfd.daemon import config as cfg
from mxfd.daemon.config import Config, ConfigError, apply_overrides, load, loads

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "mxfd.toml"


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        loads(text)
    return str(info.value)


def test_the_shipped_example_loads_and_states_every_default() -> None:
    loaded = load(str(SHIPPED))
    assert dataclasses.replace(loaded, path=None) == Config()


def test_the_shipped_example_mentions_every_key() -> None:
    text = SHIPPED.read_text()
    for section, keys in cfg.SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} =" in text, f"[{section}] {key} is not documented in config/mxfd.toml"
    for key in cfg.SOURCE_SCHEMA:
        assert key in text


def test_a_missing_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load() == Config()


def test_the_default_file_lives_under_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "mxfd").mkdir()
    (tmp_path / "mxfd" / "mxfd.toml").write_text("[audio]\nperiod = 256\n")
    assert cfg.default_config_path() == str(tmp_path / "mxfd" / "mxfd.toml")
    assert load().audio.period == 256


def test_without_xdg_config_home_the_default_is_under_dot_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert cfg.default_config_path() == os.path.expanduser("~/.config/mxfd/mxfd.toml")


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load(str(tmp_path / "nope.toml"))


def test_a_file_that_is_not_toml_is_refused_with_its_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[audio\nrate = 1")
    with pytest.raises(ConfigError, match=str(p) + ": not valid TOML"):
        load(str(p))


@pytest.mark.parametrize(
    ("text", "key", "value", "allowed"),
    [
        ('[midi]\napi = "oss"', "api", "'oss'", "one of 'auto', 'alsa', 'jack'"),
        ('[midi]\njack_reader = "x"', "jack_reader", "'x'", "'jack-client', 'rtmidi'"),
        ("[midi]\ninclude = 3", "include", "3", "a list of regular expressions"),
        ('[midi]\nexclude = ["("]', "exclude", "['(']", "a valid regular expression"),
        ("[midi]\nvirtual_port = 1", "virtual_port", "1", "true or false"),
        ('[midi]\nthru = "yes"', "thru", "'yes'", "true or false"),
        ('[midi]\nraw = ["/dev/ttyUSB0"]', "raw", "['/dev/ttyUSB0']", '"raw:" and a device path'),
        ("[midi]\nraw_baud = 10", "raw_baud", "10", "from 300 to 4000000"),
        ("[midi]\npoll_interval = 5", "poll_interval", "5", "from 0.05 to 1"),
        ('[audio]\ndevice = ""', "device", "''", '"default", a device name'),
        ("[audio]\nrate = 22050", "rate", "22050", "44100, 48000, 88200, 96000"),
        ("[audio]\nperiod = 7", "period", "7", "from 16 to 8192"),
        ("[audio]\nperiods = 1", "periods", "1", "from 2 to 8"),
        ("[audio]\nperiods = 2.5", "periods", "2.5", "a whole number"),
        ('[audio]\npin = "alsa"', "pin", "'alsa'", "one of 'auto', 'portaudio', 'jack'"),
        ('[thru]\nlatency_ms = "fast"', "latency_ms", "'fast'", '"auto" or a number of milliseconds'),
        ("[thru]\nlatency_ms = 0", "latency_ms", "0", "above 0"),
        ("[thru]\nmargin_ms = -1", "margin_ms", "-1", "from 0 to 100"),
        ("[synth]\npolyphony = 0", "polyphony", "0", "from 1 to 1024"),
        ("[synth]\npolyphony = true", "polyphony", "True", "a whole number"),
        ('[synth]\nsoundfont = "fonts/GM.sf2"', "soundfont", "'fonts/GM.sf2'", '"builtin", the absolute path'),
        ('[synth]\nsoundfont = ["/a.sf2", 3]', "soundfont", "['/a.sf2', 3]", "or a list of them"),
        ("[synth]\nsoundfont = []", "soundfont", "[]", '"builtin", the absolute path'),
        ("[synth]\ngain = 30", "gain", "30", "a number from -60 to 24"),
        ('[synth]\ngain = "loud"', "gain", "'loud'", "a number from -60 to 24"),
        ('[synth]\nreverb = "off"', "reverb", "'off'", "true or false"),
        ("[synth]\nchorus = 0", "chorus", "0", "true or false"),
        ('[client]\nsocket = "rel/path"', "socket", "'rel/path'", "an absolute path"),
        ("[client]\ngroup = 5", "group", "5", "a group name"),
        ("[client]\nallowed_uids = [-1]", "allowed_uids", "[-1]", "user ids"),
        ("[client]\nmax_clients = 0", "max_clients", "0", "from 1 to 65536"),
        ('[client]\nallow_shared_directory = "yes"', "allow_shared_directory", "'yes'", "true or false"),
        ("[record]\nhistory_seconds = 301", "history_seconds", "301", "from 0 to 300"),
        ('[log]\nlevel = "loud"', "level", "'loud'", "'debug', 'info', 'warning', 'error'"),
    ],
)
def test_a_bad_value_is_refused_naming_key_value_and_what_is_allowed(
    text: str, key: str, value: str, allowed: str
) -> None:
    message = refused(text)
    assert f"{key} = {value}" in message
    assert allowed in message


def test_every_schema_key_has_a_bad_value_test() -> None:
    # The table above covers each key at least once (keeps new keys honest).
    covered = {
        "api", "jack_reader", "include", "exclude", "virtual_port", "thru", "raw", "raw_baud", "poll_interval",
        "device", "rate", "period", "periods", "pin", "latency_ms", "margin_ms", "polyphony", "socket", "group",
        "allowed_uids", "history_seconds", "level", "soundfont", "gain", "reverb", "chorus",
        "max_clients", "allow_shared_directory",
    }
    assert {k for keys in cfg.SCHEMA.values() for k in keys} == covered


def test_an_unknown_key_is_refused_with_the_allowed_keys() -> None:
    message = refused("[audio]\nsamplerate = 48000")
    assert "unknown key 'samplerate'" in message
    assert "allowed keys: device, period, periods, pin, rate" in message


def test_an_unknown_section_is_refused() -> None:
    assert "unknown section [sound]" in refused("[sound]\nrate = 1")


def test_a_section_that_is_not_a_table_is_refused() -> None:
    assert "expected a table" in refused("audio = 3")


def test_source_rules_need_a_match_and_refuse_unknown_keys() -> None:
    assert "has no 'match'" in refused("[[midi.sources]]\nthru = false")
    assert "unknown key 'volume'" in refused('[[midi.sources]]\nmatch = "x"\nvolume = 3')
    assert "thru = 3" in refused('[[midi.sources]]\nmatch = "x"\nthru = 3')


def test_the_error_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[audio]\nrate = 1\n")
    with pytest.raises(ConfigError, match=f"^{p}: \\[audio\\] rate = 1: expected one of"):
        load(str(p))


def test_thru_per_source_follows_the_first_matching_rule() -> None:
    c = loads(
        '[midi]\nthru = true\n'
        '[[midi.sources]]\nmatch = "^Piano"\nthru = false\n'
        '[[midi.sources]]\nmatch = "Pi"\nthru = true\n'
    )
    assert c.midi.thru_for("Piano:out") is False
    assert c.midi.thru_for("Pico:out") is True
    assert c.midi.thru_for("other:out") is True
    assert loads("[midi]\nthru = false").midi.thru_for("any") is False


def test_include_exclude_and_connect_rules_decide_what_is_connected() -> None:
    c = loads('[midi]\ninclude = ["kbd"]\nexclude = ["kbd-2"]\n[[midi.sources]]\nmatch = "^forced"\nconnect = true\n')
    assert c.midi.wants("kbd-1:out")
    assert not c.midi.wants("kbd-2:out")
    assert not c.midi.wants("synth:out")
    assert c.midi.wants("forced:out")
    assert Config().midi.wants("anything:out")
    assert not Config().midi.wants("Midi Through:Midi Through Port-0 14:0")


def test_flags_override_the_file_after_the_same_checks() -> None:
    c = apply_overrides(Config(), midi_api="jack", audio_device="system", rate=44100, period=256)
    assert (c.midi.api, c.audio.device, c.audio.rate, c.audio.period) == ("jack", "system", 44100, 256)
    with pytest.raises(ConfigError, match="--rate = 1234: expected one of"):
        apply_overrides(Config(), rate=1234)
    assert apply_overrides(Config()) == Config()


def test_the_synth_section_names_the_bank_its_gain_and_effects() -> None:
    assert Config().synth.soundfont == ()  # the system's General MIDI font, else the built-in bank
    c = loads('[synth]\nsoundfont = "/usr/share/sounds/sf2/TimGM6mb.sf2"\ngain = -6\nreverb = false\nchorus = false')
    assert (c.synth.soundfont, c.synth.gain, c.synth.reverb, c.synth.chorus) == (
        ("/usr/share/sounds/sf2/TimGM6mb.sf2",), -6.0, False, False
    )
    stack = loads('[synth]\nsoundfont = ["~/mine.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "builtin"]')
    assert stack.synth.soundfont == ("~/mine.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "builtin")
    assert loads('[synth]\nsoundfont = "builtin"').synth.soundfont == ("builtin",)


def test_the_synth_flags_override_the_file_after_the_same_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = loads('[synth]\nsoundfont = "/a.sf2"\ngain = 3\nreverb = false')
    c = apply_overrides(base, soundfont="/b.sf2", gain=-12.5, reverb=True, chorus=False)
    assert (c.synth.soundfont, c.synth.gain, c.synth.reverb, c.synth.chorus) == (("/b.sf2",), -12.5, True, False)
    assert apply_overrides(base, soundfont="builtin").synth.soundfont == ("builtin",)
    monkeypatch.chdir(tmp_path)  # a relative path on the command line is the shell's, made absolute
    assert apply_overrides(base, soundfont="GM.sf2").synth.soundfont == (str(tmp_path / "GM.sf2"),)
    assert apply_overrides(base).synth == base.synth  # a flag left out leaves the file's value
    with pytest.raises(ConfigError, match="--gain = 99.0: expected a number from -60 to 24"):
        apply_overrides(base, gain=99.0)
    with pytest.raises(ConfigError, match="--soundfont = '': expected"):
        apply_overrides(base, soundfont="")


def test_the_client_section_has_what_the_server_reads() -> None:
    c = loads(
        '[client]\nsocket = "/tmp/x.sock"\ngroup = "audio"\nallowed_uids = [1001]\n[record]\nhistory_seconds = 60'
    )
    assert (c.client.socket, c.client.group, c.client.allowed_uids) == ("/tmp/x.sock", "audio", [1001])
    assert c.record.history_seconds == 60.0
    assert loads('[client]\ngroup = ""').client.group is None
