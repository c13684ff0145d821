"""The test ear hears a JACK client's sine at its pitch (the harness itself works)."""

import jack
import numpy as np
import pytest

from tests.e2e.ears import Ear, dominant_frequency
from tests.jackserver import JackServer

pytestmark = pytest.mark.e2e


def test_ear_hears_a_sine_at_its_pitch(jack_server: JackServer) -> None:
    src = jack.Client("mxfd-test-sine", no_start_server=True)
    out = src.outports.register("out")
    phase = [0]
    rate = src.samplerate

    @src.set_process_callback
    def process(frames: int) -> None:
        t = np.arange(phase[0], phase[0] + frames)
        out.get_array()[:] = 0.5 * np.sin(2 * np.pi * 440.0 * t / rate)
        phase[0] += frames

    src.activate()
    ear = Ear()
    try:
        ear.connect(r"^mxfd-test-sine:out$")
        heard = ear.listen(0.5)
        assert abs(dominant_frequency(heard[-16384:], rate) - 440.0) < 440.0 * 0.005
    finally:
        ear.close()
        src.deactivate()
        src.close()
