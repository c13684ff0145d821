"""libjack for compiled process callbacks: JACK's real-time thread runs machine code, never Python.

Theory of operation
-------------------
A JACK client's process callback must finish within the period (2.67 ms at
48 kHz / 128).  A Python callback (JACK-Client's ``set_process_callback``)
first takes the GIL, and any other thread of the process may hold it for a
switch interval or for the whole of a C call; JACK then counts an xrun
against the client ("was not finished").  So the callbacks that run in
JACK's thread here are numba ``@cfunc``s: they call libjack directly through
the ctypes function pointers below, touch only preallocated memory, and
never take the GIL.  Everything else about a client (opening it, ports,
connections, notifications, which run in JACK's non-real-time thread) stays
with JACK-Client; :func:`set_process_callback` installs the compiled
callback on a JACK-Client client before it is activated.

State reaches a compiled callback only through its ``arg`` pointer: by
convention an ``int64`` array whose entries are numbers and the addresses of
further numpy arrays, turned back into arrays inside the callback with
``numba.carray(as_ptr(address), shape, dtype)``.  (Global numpy arrays are
frozen into compiled code as constants, so they cannot carry state.)  The
arrays must outlive the client: keep a reference until it is closed.

A ``@cfunc`` that calls ctypes pointers cannot go in numba's cache
("dynamic globals"), and compiling one at each start links every compiled
function it calls into it (seconds, and the compiler's memory for the life
of the process).  So a callback that must start fast calls C through
:data:`ADDRESSES` instead: the functions' addresses, passed in at run time
like any other state, and called with the ``call_*`` intrinsics below (one
per C signature).  Such a callback has no dynamic globals and is cached
like any compiled function.

JACK-Client and this module load the same shared library (the system's
libjack, or PipeWire's under ``pw-jack``), so a client handle from one is
valid in the other.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: The signature of a JACK process callback: ``int process(jack_nframes_t nframes, void *arg)``.
PROCESS_SIGNATURE = types.int32(types.uint32, types.voidptr)

#: ``jack_midi_event_t`` as three 64-bit words: the frame offset (low 32 bits), the size, the data's address.
MIDI_EVENT_WORDS = 3


def _as_ptr(typingctx: Any, src: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(src), codegen


#: ``as_ptr(address)``: an integer address as a ``void *`` (for ``numba.carray`` and C calls), in compiled code.
as_ptr: Any = intrinsic(_as_ptr)


def _load() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")


_lib = _load()
_libc = ctypes.CDLL(None, use_errno=True)

# -- called from compiled callbacks ------------------------------------------------------------

#: ``void *jack_port_get_buffer(jack_port_t *, jack_nframes_t)``
port_get_buffer = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)(("jack_port_get_buffer", _lib))
#: ``uint32_t jack_midi_get_event_count(void *port_buffer)``
midi_get_event_count = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)(("jack_midi_get_event_count", _lib))
#: ``int jack_midi_event_get(jack_midi_event_t *event, void *port_buffer, uint32_t index)``
midi_event_get = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)(
    ("jack_midi_event_get", _lib)
)
#: ``void jack_midi_clear_buffer(void *port_buffer)``
midi_clear_buffer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(("jack_midi_clear_buffer", _lib))
#: ``int jack_midi_event_write(void *port_buffer, jack_nframes_t time, const jack_midi_data_t *data, size_t size)``
midi_event_write = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)(
    ("jack_midi_event_write", _lib)
)
#: ``jack_nframes_t jack_last_frame_time(const jack_client_t *)``: the frame time of this cycle's first frame.
last_frame_time = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)(("jack_last_frame_time", _lib))
#: ``jack_time_t jack_frames_to_time(const jack_client_t *, jack_nframes_t)``: when a frame was (or will be), in µs.
frames_to_time = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint32)(("jack_frames_to_time", _lib))
#: ``int jack_get_cycle_times(client, uint32_t *frames, uint64_t *usecs, uint64_t *next_usecs, float *period)``
get_cycle_times = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)(("jack_get_cycle_times", _lib))
#: ``ssize_t write(int, const void *, size_t)``: a wake-up for a thread that sleeps on a descriptor.
fd_write = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)(("write", _libc))

# -- C calls through addresses known only at run time (cacheable) ----------------------------------


def _foreign(restype: Any, *argtypes: Any) -> Any:
    """An intrinsic ``f(address, *args)`` calling the C function at ``address`` as ``restype(*argtypes)``."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        from llvmlite import ir

        ret = ir.VoidType() if restype == types.void else context.get_value_type(restype)
        fnty = ir.FunctionType(ret, [context.get_value_type(t) for t in argtypes])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        result = builder.call(fn, list(args[1:]))
        return context.get_dummy_value() if restype == types.void else result

    sig = restype(types.int64, *argtypes)
    if len(argtypes) == 1:

        def typer1(typingctx: Any, addr: Any, a: Any) -> Any:
            return sig, codegen

        return intrinsic(typer1)
    if len(argtypes) == 2:

        def typer2(typingctx: Any, addr: Any, a: Any, b: Any) -> Any:
            return sig, codegen

        return intrinsic(typer2)
    if len(argtypes) == 3:

        def typer3(typingctx: Any, addr: Any, a: Any, b: Any, c: Any) -> Any:
            return sig, codegen

        return intrinsic(typer3)

    if len(argtypes) == 4:

        def typer4(typingctx: Any, addr: Any, a: Any, b: Any, c: Any, d: Any) -> Any:
            return sig, codegen

        return intrinsic(typer4)

    def typer5(typingctx: Any, addr: Any, a: Any, b: Any, c: Any, d: Any, e: Any) -> Any:
        return sig, codegen

    return intrinsic(typer5)


#: ``call_p_pu(address, ptr, u32) -> ptr``: jack_port_get_buffer
call_p_pu: Any = _foreign(types.voidptr, types.voidptr, types.uint32)
#: ``call_u_p(address, ptr) -> u32``: jack_midi_get_event_count, jack_last_frame_time
call_u_p: Any = _foreign(types.uint32, types.voidptr)
#: ``call_i_ppu(address, ptr, ptr, u32) -> i32``: jack_midi_event_get
call_i_ppu: Any = _foreign(types.int32, types.voidptr, types.voidptr, types.uint32)
#: ``call_i_ip(address, i32, ptr) -> i32``: clock_gettime
call_i_ip: Any = _foreign(types.int32, types.int32, types.voidptr)
#: ``call_l_ipl(address, i32, ptr, i64) -> i64``: write
call_l_ipl: Any = _foreign(types.int64, types.int32, types.voidptr, types.int64)
#: ``call_v_p(address, ptr)``: jack_midi_clear_buffer
call_v_p: Any = _foreign(types.void, types.voidptr)
#: ``call_i_pupl(address, ptr, u32, ptr, i64) -> i32``: jack_midi_event_write
call_i_pupl: Any = _foreign(types.int32, types.voidptr, types.uint32, types.voidptr, types.int64)

#: ``call_i_ppppp(address, ptr, ptr, ptr, ptr, ptr) -> i32``: jack_get_cycle_times
call_i_ppppp: Any = _foreign(types.int32, types.voidptr, types.voidptr, types.voidptr, types.voidptr, types.voidptr)


def _address(fn: Any) -> int:
    return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)


#: Addresses of the C functions a cached callback calls, by name.
ADDRESSES: dict[str, int] = {
    "jack_port_get_buffer": _address(_lib.jack_port_get_buffer),
    "jack_midi_get_event_count": _address(_lib.jack_midi_get_event_count),
    "jack_midi_event_get": _address(_lib.jack_midi_event_get),
    "jack_midi_clear_buffer": _address(_lib.jack_midi_clear_buffer),
    "jack_midi_event_write": _address(_lib.jack_midi_event_write),
    "jack_last_frame_time": _address(_lib.jack_last_frame_time),
    "jack_get_cycle_times": _address(_lib.jack_get_cycle_times),
    "clock_gettime": _address(_libc.clock_gettime),
    "write": _address(_libc.write),
}

# -- called from Python -----------------------------------------------------------------------

_lib.jack_set_process_callback.restype = ctypes.c_int
_lib.jack_set_process_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]


def client_address(client: Any) -> int:
    """The ``jack_client_t *`` of a JACK-Client ``Client``."""
    import jack

    return int(jack._ffi.cast("uintptr_t", client._ptr))


def port_address(port: Any) -> int:
    """The ``jack_port_t *`` of a JACK-Client port."""
    import jack

    return int(jack._ffi.cast("uintptr_t", port._ptr))


def set_process_callback(client: Any, callback: Any, arg: int) -> None:
    """Make the compiled ``callback`` (a ``@cfunc`` of :data:`PROCESS_SIGNATURE`) the inactive ``client``'s.

    ``arg`` is the address the callback receives (see the module docstring).
    """
    if _lib.jack_set_process_callback(client_address(client), callback.address, arg) != 0:
        raise RuntimeError("jack_set_process_callback failed (is the client already active?)")
