"""``mxfd run`` playing a SoundFont end to end: a real JACK server, a keyboard, the daemon as a process, an ear.

Each test starts its own daemon on a font (the helpers of test_daemon.py, which
otherwise play the built-in bank) after the session has compiled the engine
once (:func:`tests.e2e.conftest.compiled_engine`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tests.e2e.ears import Ear, Keyboard, dominant_frequency, rms_dbfs, wait_until
from tests.e2e.test_daemon import A4, CONFIG, KBD, OUT, Daemon, connected, hear_note, mxfd, recent_dbfs, settle
from tests.jackserver import JackServer

pytestmark = pytest.mark.e2e

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
#: Flute: a strong fundamental (its pitch is the spectrum's peak in both fonts) and a looped, sustained tone.
FLUTE = 73
#: Quieter than this, a sample is silence; a note of either font is about -35 dBFS.
SILENT = 1e-4
#: The JACK server's period (tests/jackserver.py), the daemon's block.
PERIOD = 128
#: The most periods in a row a loaded machine's underruns silent (a gap of the swap's own is far longer).
MISSED_PERIODS = 4


class Rig:
    """A daemon on a font, an ear on its output and a keyboard it has connected."""

    def __init__(self, tmp: Path, config: str, soundfont: str | None) -> None:
        self.daemon = Daemon(tmp, config, soundfont=soundfont)
        self.ear = Ear()
        self.kbd: Keyboard | None = None
        ready = self.daemon.wait_for("READY=1", 60.0)
        assert ready is not None, "no READY=1\n" + self.daemon.output()[-3000:]
        self.ear.connect(OUT, timeout=15.0)
        self.kbd = Keyboard(KBD)
        assert wait_until(lambda: connected(self.keyboard.port_name), 5.0), self.daemon.output()[-3000:]

    @property
    def keyboard(self) -> Keyboard:
        assert self.kbd is not None
        return self.kbd

    def close(self) -> None:
        if self.kbd is not None:
            self.kbd.close()
        self.ear.close()
        self.daemon.close()


@pytest.fixture
def rig_on(jack_server: JackServer, compiled_engine: None, tmp_path: Path) -> Iterator[list[Rig]]:
    rigs: list[Rig] = []
    try:
        yield rigs
    finally:
        for r in rigs:
            r.close()


def font_config(path: Path | str, pin: str = "portaudio") -> str:
    return CONFIG + f'[synth]\nsoundfont = "{path}"\n[audio]\npin = "{pin}"\n'


def quiet_runs(x: np.ndarray, at_least: int) -> list[tuple[int, int]]:
    """(start, length) of each run of at least ``at_least`` samples in a row quieter than :data:`SILENT`."""
    quiet = np.concatenate(([False], np.abs(x) < SILENT, [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= at_least]


def pitch_of(heard: np.ndarray, rate: int) -> float:
    loud = heard[np.abs(heard) > 0][-int(0.4 * rate) :]
    return dominant_frequency(loud, rate)


def test_a_daemon_started_on_a_soundfont_sounds_the_note_at_its_pitch_and_names_the_bank(
    rig_on: list[Rig], tmp_path: Path
) -> None:
    rig = Rig(tmp_path, CONFIG, soundfont=TIMGM)
    rig_on.append(rig)
    d = rig.daemon
    assert f"bank {TIMGM} (" in next(line for line in d.output().splitlines() if " ready in " in line)
    st = d.status()
    assert st["bank"] == TIMGM and st["bank_info"]["soundfont"] == TIMGM and st["synth"]["soundfont"] == TIMGM
    assert f"bank: {TIMGM} (" in mxfd(d, "status").stdout
    rig.keyboard.send(0xC0, FLUTE)
    heard = hear_note(rig.ear, rig.keyboard)
    assert rms_dbfs(heard) > -50, "no sound"
    f = pitch_of(heard, rig.ear.rate)
    assert abs(f - 440.0) < 440.0 * 0.005, f


@pytest.mark.parametrize("pin", ["portaudio", "jack"])
def test_sighup_with_another_soundfont_swaps_the_bank_under_a_held_note_without_a_gap(
    rig_on: list[Rig], tmp_path: Path, pin: str
) -> None:
    rig = Rig(tmp_path, font_config(TIMGM, pin), soundfont=None)  # the config chooses, as a reload reads it
    rig_on.append(rig)
    d, ear, kbd = rig.daemon, rig.ear, rig.keyboard
    kbd.send(0xC0, FLUTE)
    kbd.note_on(A4)
    assert wait_until(lambda: recent_dbfs(ear) > -50, 2.0), "the held note never sounded"
    before = d.status()["audio"]
    mark = ear.mark()
    time.sleep(0.3)
    assert d.status()["audio"]["pin"] == pin
    d.config_path.write_text(font_config(FLUIDR3, pin))
    with d._lock:
        d.messages.clear()
    hup = ear.mark() - mark
    d.proc.send_signal(signal.SIGHUP)
    assert d.wait_for("RELOADING=1", 5.0) is not None
    assert d.wait_for("READY=1", 30.0) is not None, d.output()[-3000:]
    ready = ear.mark() - mark
    assert d.status()["bank"] == FLUIDR3
    time.sleep(0.5)
    heard = ear.since(mark)
    after = d.status()
    kbd.note_off(A4)
    # The note sounded all through: no gap in the ear's recording across the swap.  A swap that waited for the
    # load would be silent for 100 ms and more, one that cut the note silent from then on.  A period or three
    # of silence is the output missing periods on a loaded 2-core machine, while anything (a font loading in
    # any process, measured) takes a core: allowed, when the daemon counted as many underruns.
    gaps = quiet_runs(heard, PERIOD)
    missed = sum(after["audio"].get(k, 0) - before.get(k, 0) for k in ("underruns", "ring_underruns", "xruns"))
    said = f"SIGHUP at sample {hup}, READY at {ready}; silent (start, length): {gaps}; underruns counted: {missed}"
    assert all(n <= MISSED_PERIODS * PERIOD for _, n in gaps) and len(gaps) <= missed, said
    level = rms_dbfs(heard[hup + 24_000 :])  # the held note, half a second after the swap
    assert level > rms_dbfs(heard[:hup]) - 10, "the held note was cut"
    retiring = after["synth"]["retiring_voices"]
    assert retiring > 0  # the held note was the old font's, still sounding after the swap
    assert f"bank: {FLUIDR3} (" in d.output()
    assert wait_until(lambda: d.status()["synth"]["retiring_voices"] == 0, 3.0, 0.1)  # released, it ends
    f = pitch_of(hear_note(ear, kbd), ear.rate)  # new notes play the new font
    assert abs(f - 440.0) < 440.0 * 0.005, f
    assert d.status()["bank_info"]["reloads"] == 1


def test_a_soundfont_that_does_not_load_on_reload_keeps_the_bank_and_reports_why(
    rig_on: list[Rig], tmp_path: Path
) -> None:
    rig = Rig(tmp_path, font_config(TIMGM), soundfont=None)
    rig_on.append(rig)
    d = rig.daemon
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    d.config_path.write_text(font_config(broken))
    out = mxfd(d, "reload")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert str(broken) in out.stderr and f"bank in use: {TIMGM}" in out.stderr and "Traceback" not in out.stderr
    st = d.status()
    assert st["bank"] == TIMGM and str(broken) in st["bank_info"]["reload_error"]
    logged = [line for line in d.output().splitlines() if "soundfont not loaded" in line]
    assert len(logged) == 1 and f"{TIMGM} plays on: {broken}" in logged[0], logged
    assert "the last reload kept it" in mxfd(d, "status").stdout
    rig.keyboard.send(0xC0, FLUTE)  # the old bank plays on
    f = pitch_of(hear_note(rig.ear, rig.keyboard), rig.ear.rate)
    assert abs(f - 440.0) < 440.0 * 0.005, f
    d.config_path.write_text(font_config(FLUIDR3))  # and a good one is taken when asked again
    out = mxfd(d, "reload")
    assert out.returncode == 0 and f"bank loaded: {FLUIDR3}" in out.stdout, (out.stdout, out.stderr)
    assert d.status()["bank_info"]["reload_error"] is None


def harmonic_db(heard: np.ndarray, rate: int, f0: float, n: int) -> float:
    """The level of harmonic ``n`` of ``f0`` against the fundamental, in dB."""
    loud = heard[np.abs(heard) > 0][-int(0.4 * rate) :]
    spectrum = np.abs(np.fft.rfft(loud * np.hanning(len(loud))))
    freqs = np.fft.rfftfreq(len(loud), 1.0 / rate)

    def peak(f: float) -> float:
        return float(spectrum[(freqs > f * 0.97) & (freqs < f * 1.03)].max())

    return 20.0 * float(np.log10(peak(n * f0) / peak(f0)))


def test_a_list_of_soundfonts_is_a_stack_each_preset_from_the_first_font_that_has_it(
    rig_on: list[Rig], tmp_path: Path
) -> None:
    config = CONFIG + f'[synth]\nsoundfont = ["{TIMGM}", "{FLUIDR3}"]\n[audio]\npin = "jack"\n'
    rig = Rig(tmp_path, config, soundfont=None)
    rig_on.append(rig)
    d, ear, kbd = rig.daemon, rig.ear, rig.keyboard
    ready = next(line for line in d.output().splitlines() if " ready in " in line)
    assert f"bank {TIMGM} (" in ready and f" + {FLUIDR3} (" in ready
    info = d.status()["bank_info"]
    assert info["soundfonts"] == [TIMGM, FLUIDR3] and d.status()["bank"] == f"{TIMGM} + {FLUIDR3}"
    # 8:80 is FluidR3_GM's Sine Wave; TimGM6mb has no bank 8, and its 0:80, where a missing bank falls
    # back to, is a square lead with a third harmonic about 10 dB down
    kbd.send(0xB0, 0, 8)
    kbd.send(0xC0, 80)
    sine = hear_note(ear, kbd)
    settle(ear)
    kbd.send(0xB0, 0, 0)
    kbd.send(0xC0, 80)
    square = hear_note(ear, kbd)
    assert rms_dbfs(sine) > -50 and rms_dbfs(square) > -50, "no sound"
    assert harmonic_db(square, ear.rate, 440.0, 3) > -20.0
    assert harmonic_db(sine, ear.rate, 440.0, 3) < -40.0
