"""The MXF transport core: events, allocators and nodes over bytes, with no I/O.

Nothing here imports rtmidi, sounddevice, sockets or anything from
``mxfd.synth``, ``mxfd.io``, ``mxfd.daemon`` or ``mxfd.client``.
"""
