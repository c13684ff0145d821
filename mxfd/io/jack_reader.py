"""The JACK MIDI reader's process callback, compiled: every input read at its frame, without the GIL.

Theory of operation
-------------------
A Python process callback waits for the GIL in JACK's real-time thread, and
whichever other thread holds it (the socket server, the render thread, the
hot-plug watcher) makes the whole JACK graph late: an xrun for every client,
and input lost in the cycles JACK ran without this one.  So the reader's
callback is a numba ``@cfunc`` (see :mod:`mxfd.io.libjack`) and Python only
drains what it left behind, in a thread of its own.

In every cycle the callback

1. checks continuity: JACK's frame time must have advanced by exactly the
   previous cycle's length; more means cycles ran without this client and
   their MIDI is gone (counted, with the frames, when something could have
   played into them: :data:`C_HAS_INPUT`);
2. reads the position the audio output plays in this very cycle from the
   output's frame ring (``C_FOLLOW``: the reader's ``sync`` port follows the
   output's, so JACK runs it after the output), and JACK's cycle times;
3. copies every event of every port in the port table into the record ring
   (fixed-size ``int64`` records: port slot and its generation, frame offset,
   the cycle's length, frame time, played position and times, where its bytes
   are) and its bytes into the byte ring; a full ring drops the event and
   counts it, nothing waits;
4. publishes the records (an opaque C call between the records and the
   counter is the compiler's fence; x86-64 keeps stores in order) and writes
   a byte to the wake-up descriptor, or, when nothing is pending, marks the
   cycle's played position as passed on (:data:`C_DONE`), so the render that
   waits for the reader's verdict on a cycle goes ahead at once.

The drain thread turns each record into a capture at its master time (the
played position through the output's own sample mapping, or JACK's clock
when no output plays) and, after the batch, reports the cycle passed on.

Ports come and go while the callback runs: a slot is published by writing
its port's address last, and emptied by writing 0 and letting two cycles go
by before the port is unregistered.  A slot's generation, copied into every
record, tells the drain that a record belongs to a port since removed.  The
callback only reads memory this object owns (the output's ring through a
mapping of its own, kept while the callback may read it), so nothing it
touches goes away under it.
"""

from __future__ import annotations

import mmap
import os
import time
from typing import Any, Final, Mapping, Optional

import numba
import numpy as np
import numpy.typing as npt
from numba import cfunc
from numba.np import numpy_support

from mxfd.io.base import PlayedRing, ThruQueue, close_fds
from mxfd.io.jack_records import (
    R_BYTE,
    R_CYCLE,
    R_GEN,
    R_N,
    R_NEXT_USECS,
    R_NFRAMES,
    R_OFFSET,
    R_PLAYED,
    R_SIZE,
    R_SLOT,
    R_USECS,
)
from mxfd.io.libjack import (
    ADDRESSES,
    MIDI_EVENT_WORDS,
    PROCESS_SIGNATURE,
    as_ptr,
    call_i_ip,
    call_i_ppppp,
    call_i_ppu,
    call_l_ipl,
    call_p_pu,
    call_u_p,
    set_process_callback,
)

#: MIDI ports the callback reads (slots of the port table).
MAX_PORTS: Final = 64
#: Events the record ring holds, and bytes the byte ring holds (powers of two).
RECORDS: Final = 4096
DATA: Final = 1 << 17


# the control vector
C_WRITE = 0  # records published (callback)
C_READ = 1  # records drained (drain thread)
C_BYTES_W = 2
C_BYTES_R = 3
C_CYCLES = 4  # callbacks run
C_LAST_FRAME = 5  # JACK's frame time of the previous cycle, -1: none yet
C_LAST_NFRAMES = 6
C_LOST_CYCLES = 7
C_LOST_FRAMES = 8
C_STALLS = 9
C_DROPPED = 10  # events the full rings had no room for
C_HAS_INPUT = 11  # set by Python: something could play into this client
C_DONE = 12  # the latest played position whose cycle's input has been passed on (callback)
C_FOLLOW = 13  # 1: the fields below describe the output's frame ring
C_Q_ADDR = 14
C_Q_WORDS = 15
C_Q_READ = 16  # the ring's word indices: its read counter, first slot, slot stride, slots
C_Q_SLOT0 = 17
C_Q_SLOTQ = 18
C_Q_SLOTS = 19
C_FOLLOWED = 20  # cycles read with ports present and an output to follow
C_DONE_PY = 21  # as C_DONE, from the drain thread
C_PLAYED = 22  # the latest cycle's played position, written after its records are published
C_THRU_ON = 24  # 1: the fields below describe a data plane's thru queue (see set_thru_queue)
C_THRU_ADDR = 25
C_THRU_ROWS = 26
C_THRU_N_ADDR = 27
C_THRU_DROPS_ADDR = 28  # the int64 the plane counts thru events beyond its queue's room in
C_THRU = 29  # events played straight through the thru queue
C_N = 32

# the callback's argument
_A_CTL = 0
_A_PORTS = 1  # (MAX_PORTS,) port addresses, 0: free
_A_GENS = 2
_A_REC = 3
_A_DATA = 4
_A_CLIENT = 5
_A_FUNCTIONS = 6
_A_EVENT = 7
_A_TIMES = 8  # uint32 frames, pad, uint64 usecs, uint64 next usecs, float period
_A_WAKE_FD = 9
_A_WAKE_BYTE = 10
_A_CLOCK = 11
_A_THRU_BASE = 12  # (MAX_PORTS,) the first channel each port plays straight through, -1: none
_A_N = 13

_F_GET_BUFFER = 0
_F_EVENT_COUNT = 1
_F_EVENT_GET = 2
_F_LAST_FRAME_TIME = 3
_F_CYCLE_TIMES = 4
_F_WRITE = 5
_F_CLOCK_GETTIME = 6
_F_N = 7
_FUNCTIONS = ("jack_port_get_buffer", "jack_midi_get_event_count", "jack_midi_event_get", "jack_last_frame_time",
              "jack_get_cycle_times", "write", "clock_gettime")  # fmt: skip
_CLOCK_MONOTONIC = 1

carray: Any = numpy_support.carray


@numba.njit(nogil=True, cache=True)
def _hold_thru_impl(ctl: Any, offset: Any, base: Any, src: Any, size: Any) -> None:
    """Queue a channel message to play at ``offset`` of this very cycle, as the pin's own inputs do.

    The row format is :func:`mxfd.synth.engine.dataplane.hold_thru`'s; the pin's callback, which
    JACK runs after this one in the cycle, plays the queue and empties it.
    """
    count = carray(as_ptr(ctl[C_THRU_N_ADDR]), 1, dtype=np.int64)
    row = count[0]
    if row >= ctl[C_THRU_ROWS]:
        drops = carray(as_ptr(ctl[C_THRU_DROPS_ADDR]), 1, dtype=np.int64)
        drops[0] += 1
        return
    q = carray(as_ptr(ctl[C_THRU_ADDR]), (ctl[C_THRU_ROWS], 4), dtype=np.int64)
    q[row, 0] = offset
    q[row, 1] = base
    q[row, 2] = size
    b1 = np.int64(src[1]) if size > 1 else np.int64(0)
    b2 = np.int64(src[2]) if size > 2 else np.int64(0)
    q[row, 3] = (np.int64(src[0]) << 16) | (b1 << 8) | b2
    count[0] = row + 1
    ctl[C_THRU] += 1


_hold_thru: Any = _hold_thru_impl  # typed Any for the compiled caller: mypy cannot follow numba's types


@cfunc(PROCESS_SIGNATURE, cache=True)
def _process(nframes: int, arg: Any) -> int:
    a = carray(arg, _A_N, dtype=np.int64)
    fn = carray(as_ptr(a[_A_FUNCTIONS]), _F_N, dtype=np.int64)
    ctl = carray(as_ptr(a[_A_CTL]), C_N, dtype=np.int64)
    ports = carray(as_ptr(a[_A_PORTS]), MAX_PORTS, dtype=np.int64)
    gens = carray(as_ptr(a[_A_GENS]), MAX_PORTS, dtype=np.int64)
    rec = carray(as_ptr(a[_A_REC]), (RECORDS, R_N), dtype=np.int64)
    data = carray(as_ptr(a[_A_DATA]), DATA, dtype=np.uint8)
    ev = carray(as_ptr(a[_A_EVENT]), MIDI_EVENT_WORDS, dtype=np.uint64)
    times = carray(as_ptr(a[_A_TIMES]), 4, dtype=np.uint64)
    thru_base = carray(as_ptr(a[_A_THRU_BASE]), MAX_PORTS, dtype=np.int64)
    n = np.int64(nframes)
    if n <= 0:
        return 0  # JACK never asks for none; a division by it below would raise
    thru_on = ctl[C_THRU_ON] != 0

    frame = np.int64(call_u_p(fn[_F_LAST_FRAME_TIME], as_ptr(a[_A_CLIENT])))
    last = ctl[C_LAST_FRAME]
    if last >= 0:
        went = (frame - last) & 0xFFFFFFFF  # the frame time is a wrapping uint32
        # Half the range or more is the frame time moving back (PipeWire re-anchors it, on a new
        # quantum for one), not 24 hours of cycles: nothing is known lost then.
        lost = went - ctl[C_LAST_NFRAMES] if went < 0x80000000 else 0
        if lost > 0 and ctl[C_HAS_INPUT] != 0:
            ctl[C_LOST_CYCLES] += (lost + n - 1) // n
            ctl[C_LOST_FRAMES] += lost
            ctl[C_STALLS] += 1
    ctl[C_LAST_FRAME] = frame
    ctl[C_LAST_NFRAMES] = n

    played = np.int64(-1)
    if ctl[C_FOLLOW] != 0 and ctl[C_Q_SLOTS] > 0:
        q = carray(as_ptr(ctl[C_Q_ADDR]), ctl[C_Q_WORDS], dtype=np.int64)
        taken = q[ctl[C_Q_READ]]
        if taken > 0:
            played = q[ctl[C_Q_SLOT0] + ((taken - 1) % ctl[C_Q_SLOTS]) * ctl[C_Q_SLOTQ] + 1]
    usecs = np.int64(0)
    next_usecs = np.int64(0)
    t = as_ptr(a[_A_TIMES])
    if call_i_ppppp(fn[_F_CYCLE_TIMES], as_ptr(a[_A_CLIENT]), t, as_ptr(a[_A_TIMES] + 8),
                    as_ptr(a[_A_TIMES] + 16), as_ptr(a[_A_TIMES] + 24)) == 0:  # fmt: skip
        usecs = np.int64(times[1])
        next_usecs = np.int64(times[2])

    cycle = ctl[C_CYCLES]
    w = ctl[C_WRITE]
    bw = ctl[C_BYTES_W]
    first = w
    present = False
    get_buffer = fn[_F_GET_BUFFER]
    for slot in range(MAX_PORTS):
        port = ports[slot]
        if port == 0:
            continue
        present = True
        buf = call_p_pu(get_buffer, as_ptr(port), nframes)
        for i in range(call_u_p(fn[_F_EVENT_COUNT], buf)):
            if call_i_ppu(fn[_F_EVENT_GET], as_ptr(a[_A_EVENT]), buf, i) != 0:
                continue
            size = np.int64(ev[1])
            if size < 1 or w - ctl[C_READ] >= RECORDS or bw + size - ctl[C_BYTES_R] > DATA:
                ctl[C_DROPPED] += 1
                continue
            src = carray(as_ptr(np.int64(ev[2])), size, dtype=np.uint8)
            if thru_on and thru_base[slot] >= 0 and size <= 3 and 0x80 <= src[0] < 0xF0:
                _hold_thru(ctl, np.int64(ev[0] & np.uint64(0xFFFFFFFF)), thru_base[slot], src, size)
            for k in range(size):
                data[(bw + k) & (DATA - 1)] = src[k]
            r = w % RECORDS
            rec[r, R_SLOT] = slot
            rec[r, R_GEN] = gens[slot]
            rec[r, R_OFFSET] = np.int64(ev[0] & np.uint64(0xFFFFFFFF))
            rec[r, R_NFRAMES] = n
            rec[r, R_PLAYED] = played
            rec[r, R_USECS] = usecs
            rec[r, R_NEXT_USECS] = next_usecs
            rec[r, R_BYTE] = bw
            rec[r, R_SIZE] = size
            rec[r, R_CYCLE] = cycle
            w += 1
            bw += size
    if present and played >= 0:
        ctl[C_FOLLOWED] += 1
    if w != first:
        # An opaque call: the compiler keeps the records' stores before the counters'.
        call_i_ip(fn[_F_CLOCK_GETTIME], _CLOCK_MONOTONIC, as_ptr(a[_A_CLOCK]))
        ctl[C_BYTES_W] = bw
        ctl[C_WRITE] = w
        call_l_ipl(fn[_F_WRITE], a[_A_WAKE_FD], as_ptr(a[_A_WAKE_BYTE]), 1)
    elif w == ctl[C_READ] and played >= 0:
        ctl[C_DONE] = played
    ctl[C_PLAYED] = played
    ctl[C_CYCLES] = cycle + 1
    return 0


class CompiledReader:
    """The callback's memory, its installation on a JACK client, and the drain's view of what it read.

    Not thread-safe on the Python side: ports are added and removed by one
    thread (the hot-plug watcher), records drained by another (the drain
    thread); the two touch disjoint fields.
    """

    def __init__(self, functions: Optional[Mapping[str, int]] = None) -> None:
        """``functions`` replaces libjack's and libc's addresses by name (tests call the callback without JACK)."""
        self.ctl = np.zeros(C_N, np.int64)
        self.ctl[C_LAST_FRAME] = -1
        self.ctl[C_DONE] = self.ctl[C_DONE_PY] = -(1 << 62)
        self.ports = np.zeros(MAX_PORTS, np.int64)
        self.gens = np.zeros(MAX_PORTS, np.int64)
        self.thru_base = np.full(MAX_PORTS, -1, np.int64)
        self._thru_queue: Optional[ThruQueue] = None
        self.rec = np.zeros((RECORDS, R_N), np.int64)
        self.data = np.zeros(DATA, np.uint8)
        self._event = np.zeros(MIDI_EVENT_WORDS, np.uint64)
        self._times = np.zeros(4, np.uint64)
        self._clock = np.zeros(2, np.int64)
        self._byte = np.ones(1, np.uint8)
        table = {**ADDRESSES, **(functions or {})}
        self._functions = np.array([table[name] for name in _FUNCTIONS], np.int64)
        self._view = self.data.data
        self._scratch = bytearray(DATA)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._arg = np.zeros(_A_N, np.int64)
        arrays: tuple[tuple[int, npt.NDArray[Any]], ...] = (
            (_A_CTL, self.ctl), (_A_PORTS, self.ports), (_A_GENS, self.gens), (_A_REC, self.rec),
            (_A_DATA, self.data), (_A_EVENT, self._event), (_A_TIMES, self._times), (_A_CLOCK, self._clock),
            (_A_WAKE_BYTE, self._byte), (_A_FUNCTIONS, self._functions), (_A_THRU_BASE, self.thru_base),
        )  # fmt: skip
        for index, array in arrays:
            self._arg[index] = array.ctypes.data
        self._arg[_A_WAKE_FD] = self._wake_w
        self._followed: Optional[PlayedRing] = None
        self._mapping: Optional[mmap.mmap] = None
        self._q: Optional[npt.NDArray[np.int64]] = None

    @property
    def wake_fd(self) -> int:
        """Readable when the callback has published records."""
        return self._wake_r

    def install(self, client: Any, client_address: int) -> None:
        """Make the callback the inactive JACK-Client ``client``'s process callback, from a fresh start."""
        self._arg[_A_CLIENT] = client_address
        self.ctl[C_LAST_FRAME] = -1
        set_process_callback(client, _process, int(self._arg.ctypes.data))

    def run_cycle(self, nframes: int, client_address: int = 0) -> None:
        """Call the callback once from this thread, as JACK would (for tests, with ``functions`` faked)."""
        self._arg[_A_CLIENT] = client_address
        _process.ctypes(nframes, int(self._arg.ctypes.data))

    def close(self) -> None:
        """Release the descriptors and the output's mapping (the client is closed: nothing calls back)."""
        self.ctl[C_FOLLOW] = 0
        self._unmap()
        close_fds(self._wake_r, self._wake_w)
        self._wake_r = self._wake_w = -1

    # -- counters -------------------------------------------------------------------------------

    def cycles(self) -> int:
        return int(self.ctl[C_CYCLES])

    def followed_cycles(self) -> int:
        """Cycles read with ports present and an output position to stamp them with."""
        return int(self.ctl[C_FOLLOWED])

    def done_position(self) -> int:
        """The latest output position whose cycle's input has been passed on."""
        return int(max(self.ctl[C_DONE], self.ctl[C_DONE_PY]))

    def lost(self) -> tuple[int, int, int, int]:
        """Input lost: (cycles run without this client, stalls, frames in them, events the rings had no room for)."""
        c = self.ctl
        return int(c[C_LOST_CYCLES]), int(c[C_STALLS]), int(c[C_LOST_FRAMES]), int(c[C_DROPPED])

    def set_has_input(self, has: bool) -> None:
        self.ctl[C_HAS_INPUT] = 1 if has else 0

    def wait_cycles(self, count: int = 2, timeout: float = 0.2) -> None:
        """Let ``count`` callbacks begin and end, so none still uses what was just unpublished."""
        start = self.cycles()
        deadline = time.monotonic() + timeout
        while self.cycles() - start < count and time.monotonic() < deadline:
            time.sleep(0.001)

    # -- ports ----------------------------------------------------------------------------------

    def add_port(self, port_address: int, thru_base: int = -1) -> tuple[int, int]:
        """Publish a port; its (slot, generation).  Raises RuntimeError when every slot is taken.

        ``thru_base``: the first channel its channel messages play on straight through the thru
        queue (:meth:`set_thru_queue`) in the cycle they came in; -1: none.
        """
        free = np.flatnonzero(self.ports == 0)
        if len(free) == 0:
            raise RuntimeError(f"the JACK reader reads at most {MAX_PORTS} ports")
        slot = int(free[0])
        self.gens[slot] += 1
        self.thru_base[slot] = thru_base
        self.ports[slot] = port_address  # last: the callback reads the slot from now on
        return slot, int(self.gens[slot])

    def remove_port(self, slot: int) -> None:
        """Unpublish a port's slot (wait :meth:`wait_cycles` before the port itself goes)."""
        self.ports[slot] = 0
        self.thru_base[slot] = -1

    def set_thru_queue(self, queue: Optional[ThruQueue]) -> None:
        """Play ports' channel messages straight into ``queue`` from now on (None: no longer)."""
        if queue is self._thru_queue:
            return
        ctl = self.ctl
        ctl[C_THRU_ON] = 0
        if self._thru_queue is not None:
            self.wait_cycles()
        self._thru_queue = queue
        if queue is None:
            return
        ctl[C_THRU_ADDR] = queue.rows_address
        ctl[C_THRU_ROWS] = queue.rows
        ctl[C_THRU_N_ADDR] = queue.count_address
        ctl[C_THRU_DROPS_ADDR] = queue.drops_address
        ctl[C_THRU_ON] = 1  # last: the fields above are in place

    def thru_events(self) -> int:
        """Events played straight through the thru queue."""
        return int(self.ctl[C_THRU])

    # -- the output's position ------------------------------------------------------------------

    def follow(self, ring: Optional[PlayedRing]) -> None:
        """Read the output's played position from ``ring`` from now on (None: there is no output)."""
        if ring is self._followed:
            return
        self.ctl[C_FOLLOW] = 0
        if self._mapping is not None:
            self.wait_cycles()
            self._unmap()
        self._followed = ring
        if ring is None:
            return
        if not ring.name:
            self._set_follow(ring.address, ring)
            return
        try:
            fd = os.open(os.path.join("/dev/shm", ring.name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._followed = None  # gone already: the output stopped meanwhile
            return
        try:
            self._mapping = mmap.mmap(fd, ring.words * 8, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._q = np.frombuffer(self._mapping, np.int64, ring.words)
        self._set_follow(self._q.ctypes.data, ring)

    def _set_follow(self, address: int, ring: PlayedRing) -> None:
        ctl = self.ctl
        ctl[C_Q_ADDR] = address
        ctl[C_Q_WORDS] = ring.words
        ctl[C_Q_READ] = ring.read
        ctl[C_Q_SLOT0] = ring.slot0
        ctl[C_Q_SLOTQ] = ring.slot_stride
        ctl[C_Q_SLOTS] = ring.slots
        ctl[C_FOLLOW] = 1  # last: the fields above are in place

    @property
    def followed(self) -> Optional[PlayedRing]:
        return self._followed

    def _unmap(self) -> None:
        self._q = None
        if self._mapping is not None:
            try:
                self._mapping.close()
            except BufferError:  # a view is still out; the mapping goes with it
                pass
            self._mapping = None

    # -- draining (the drain thread) ------------------------------------------------------------

    def clear_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def pending(self) -> tuple[int, int]:
        """The records published and not drained: (first, end), running counts."""
        return int(self.ctl[C_READ]), int(self.ctl[C_WRITE])

    def records(self, first: int, end: int) -> list[list[int]]:
        """Records ``first`` to ``end`` (running counts) as lists of ints, fields in ``R_*`` order."""
        a, b = first % RECORDS, end % RECORDS
        if a < b or first == end:
            rows: list[list[int]] = self.rec[a:b].tolist()
        else:
            rows = self.rec[a:].tolist() + self.rec[:b].tolist()  # wrapped round the ring
        return rows

    def data_of(self, record: list[int]) -> tuple[Any, int, int]:
        """A record's bytes as (buffer, start, end), valid until :meth:`consumed`."""
        start = record[R_BYTE] & (DATA - 1)
        size = record[R_SIZE]
        if start + size <= DATA:
            return self._view, start, start + size
        head = DATA - start  # wrapped round the byte ring: put together (once in 128 KiB)
        scratch = self._scratch
        scratch[:head] = self._view[start:]
        scratch[head:size] = self._view[: size - head]
        return scratch, 0, size

    def consumed(self, end: int, played: int) -> None:
        """Records up to ``end`` are passed on; the last of them was of the cycle that played ``played``."""
        last = self.rec[(end - 1) % RECORDS]
        self.ctl[C_BYTES_R] = int(last[R_BYTE]) + int(last[R_SIZE])
        ctl = self.ctl
        latest = int(ctl[C_PLAYED])  # read before the count: a cycle that publishes after it is not done
        ctl[C_READ] = end
        if int(ctl[C_WRITE]) == end and latest >= played:
            played = latest  # the cycles since had nothing to pass on
        if played >= 0:
            ctl[C_DONE_PY] = played
