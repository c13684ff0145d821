"""The synth miniport: MIDI events in, sample-accurate wave data out.

:class:`Synth` is the MXF sink at the end of the render path (the original's
software-synth miniport): the compiled voice engine (:mod:`mxfd.synth.engine`)
playing a SoundFont, or the built-in General MIDI bank, which is a SoundFont
too (:mod:`mxfd.synth.builtin_font`: built once from synthesized wavetables,
then mapped from the cache).  :class:`WaveSink` maps master-clock time to
sample positions (ISynthSinkDMus's role).
"""

from mxfd.synth.engine import SoundFontSynth as Synth
from mxfd.synth.wavesink import WaveSink

__all__ = ["Synth", "WaveSink"]
