"""The compiled voice engine: SoundFont 2 voices as FluidSynth plays them, one numba call per block.

One concept per module: :mod:`.layout` (the struct of arrays every
compiled function works on), :mod:`.cache` (keeping numba's cache
consistent), :mod:`.voice` (the render side: one voice's modulators, envelopes, LFOs,
filter and sample loop), :mod:`.channels` (the MIDI-state side: channels,
zone lookup, voice allocation), :mod:`.block` (the one call per block) and
:mod:`.synth` (:class:`SoundFontSynth`, the engine in the miniport's role).
Importing this package does not compile anything; the first render does,
or loads numba's cache.  Unit conversions, modulator source mapping and
zone lookup are the soundfont package's own functions, compiled (its
:mod:`~mxfd.synth.soundfont.jit` mark).
"""

from mxfd.synth.engine import cache

cache.check()  # before any compiled module is imported  # noqa: E402
cache.load_without_registries()

from mxfd.synth.engine.synth import FLUIDSYNTH_GAIN, SoundFontSynth  # noqa: E402

__all__ = ["FLUIDSYNTH_GAIN", "SoundFontSynth"]
