"""The compiled JACK MIDI reader's record layout, for its callback and for the drain thread alike.

Apart from :mod:`mxfd.io.jack_reader` so that the drain's module need not import numba to read it.
Each record is ``R_N`` int64 words, one event as the callback left it.
"""

R_SLOT = 0
R_GEN = 1
R_OFFSET = 2  # frame offset within the cycle
R_NFRAMES = 3  # the cycle's length
R_PLAYED = 4  # the output's position in that cycle, -1: none
R_USECS = 5  # JACK's time of the cycle's start (µs), and of the next cycle's
R_NEXT_USECS = 6
R_BYTE = 7  # where its bytes start in the byte ring (a running count)
R_SIZE = 8
R_CYCLE = 9  # the cycle's number
R_N = 10
