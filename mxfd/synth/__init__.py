"""The synth miniport: MIDI in, wave data out (placeholder, being written)."""


class Synth:
    pass
