"""SoundFont 2.04 (and SF3) instruments: parsing, zone resolution and memory-mapped sample data.

One concept per module, in the order a load runs: :mod:`.riff` (chunks),
:mod:`.records` (pdta records as numpy arrays), :mod:`.sample_data` (the
mmap of ``smpl``/``sm24`` and the sample headers), :mod:`.generators` and
:mod:`.modulators` (the spec's tables and rules), :mod:`.zones` (voice zone
tables built at load time for compiled lookup), :mod:`.units` (unit
conversions), :mod:`.font` (:func:`load_soundfont`), :mod:`.stack`
(several fonts played as one) and :mod:`.search` (which font to use by
default).  Nothing here depends on the rest of the synth.
"""

from mxfd.synth.soundfont.errors import LoadReport, SoundFontError
from mxfd.synth.soundfont.font import (
    PERCUSSION_BANK,
    PresetInfo,
    SoundFont,
    VoiceZone,
    load_soundfont,
    soundfont_from_buffer,
)
from mxfd.synth.soundfont.search import BUILTIN, DEFAULT_SOUNDFONT_PATHS, resolve_soundfont

__all__ = [
    "BUILTIN",
    "DEFAULT_SOUNDFONT_PATHS",
    "PERCUSSION_BANK",
    "LoadReport",
    "PresetInfo",
    "SoundFont",
    "SoundFontError",
    "VoiceZone",
    "load_soundfont",
    "resolve_soundfont",
    "soundfont_from_buffer",
]
