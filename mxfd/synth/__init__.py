"""The synth miniport: MIDI events in, sample-accurate wave data out.

:class:`Synth` is the MXF sink at the end of the render path (the original's
software-synth miniport); :class:`WaveSink` maps master-clock time to sample
positions (ISynthSinkDMus's role).  The built-in General MIDI bank is made
at start-up from synthesized wavetables and needs no files.
"""

from mxfd.synth.bank import Bank, get_bank
from mxfd.synth.miniport import Synth
from mxfd.synth.wavesink import WaveSink

__all__ = ["Bank", "Synth", "WaveSink", "get_bank"]
