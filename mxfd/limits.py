"""Limits shared by the daemon's configuration, the offline renderer and the command line.

Each lives here once so that the config check, the synth and ``mxfd render``
can never disagree; this module imports nothing, so the command line can
show the limits without loading numpy.
"""

from typing import Final

#: Most voices a synth may have, in the daemon and in ``mxfd render`` alike (its
#: scratch arrays grow with polyphony x segment length).
MAX_POLYPHONY: Final = 1024
#: The longest MIDI file ``mxfd render`` renders unless told otherwise, seconds (2 hours):
#: more than real music lasts, and a bound on what a corrupt delta time can ask for.
DEFAULT_MAX_RENDER_SECONDS: Final = 7200.0
#: The range of the synth's output gain in dB (``--gain``, ``[synth] gain``): 0 is as loud as
#: FluidSynth at its default gain; beyond these a level is a mistake, not a setting.
MIN_GAIN_DB: Final = -60.0
MAX_GAIN_DB: Final = 24.0
#: Frames ``mxfd render`` renders at a time.  Offline there is no device period to keep to, and every
#: event still lands on its own sample inside the block; larger blocks only pay the per-block Python less
#: often (the dense 256-note file: 6.36 s of CPU at 1024 frames against 8.00 s at 128; a 16-minute
#: file of Debian's planetblupi music: 9.7 s at 4096 against 12.2 s at 1024).
RENDER_BLOCK: Final = 4096
