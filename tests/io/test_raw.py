"""Raw byte sources: a pseudo-terminal fed a real MIDI byte stream in random fragments.

The pty stands in for a serial MIDI adapter; the bytes go through the real
capture stream (capture sink and packer) and come out as packed messages.
"""

from __future__ import annotations

import fcntl
import os
import random
import struct
import termios
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from mxfd.core.wire import DMUS_EVENT_STRUCTURED, decode_buffer
from mxfd.daemon.streams import CaptureStream
from mxfd.io.base import Wake
from mxfd.io.raw import RawBackend, RawSource, set_baud
from tests.e2e.ears import wait_until

CLOCK = 0xF8


def performance() -> tuple[bytes, list[bytes], int]:
    """A real byte stream as a keyboard sends it, the messages it holds, and its clock bytes.

    Running status, a real-time clock byte in the middle of a message, pitch
    bend, pedal, a GM reset and a SysEx longer than an event buffer.
    """
    wire = bytearray()
    messages: list[bytes] = []
    clocks = 0

    def send(msg: bytes, running: bool = False) -> None:
        wire.extend(msg[1:] if running else msg)
        messages.append(msg)

    send(bytes([0xC0, 80]))
    send(bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7]))  # GM system on
    for i, note in enumerate((60, 64, 67, 72)):
        send(bytes([0x90, note, 100]), running=i > 0)
    # A clock byte between a status and its data bytes: MIDI 1.0 allows it anywhere.
    wire.extend([0xB0, CLOCK])
    clocks += 1
    wire.extend([64, 127])
    messages.append(bytes([0xB0, 64, 127]))
    send(bytes([0xE0, 0x00, 0x50]))
    for i, note in enumerate((60, 64, 67, 72)):
        send(bytes([0x90, note, 0]), running=i > 0)
    big = bytes([0xF0, 0x43]) + bytes(i % 128 for i in range(5000)) + bytes([0xF7])
    send(big)
    for _ in range(3):
        wire.append(CLOCK)
        clocks += 1
    send(bytes([0xB0, 64, 0]))
    send(bytes([0x80, 60, 0]))
    return bytes(wire), messages, clocks


def fragments(data: bytes, rng: random.Random) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        n = rng.choice((1, 1, 2, 3, 5, 8, 13, 64, 700, 4096))
        yield data[i : i + n]
        i += n


class Collector:
    """Decodes what the capture stream's packer completes."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: CaptureStream, start_time: int, data: bytes) -> None:
        with self.lock:
            for t, _group, flags, msg in decode_buffer(data, start_time):
                self.records.append((t, flags, msg))

    def messages(self) -> tuple[list[bytes], int]:
        """Messages in order (SysEx chunks joined), and the count of clock bytes."""
        out: list[bytes] = []
        sysex = bytearray()
        clocks = 0
        with self.lock:
            records = list(self.records)
        for _t, flags, msg in records:
            if flags & DMUS_EVENT_STRUCTURED and msg[0] == CLOCK:
                clocks += 1
            elif flags & DMUS_EVENT_STRUCTURED:
                out.append(msg)
            else:
                sysex += msg
                if sysex[-1] == 0xF7:
                    out.append(bytes(sysex))
                    sysex.clear()
        return out, clocks


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


def play(source: RawSource, master: int, data: bytes, rng: random.Random) -> None:
    """Write ``data`` in random fragments, each read by the source before the next is written."""
    sent = 0
    for frag in fragments(data, rng):
        os.write(master, frag)
        sent += len(frag)
        assert wait_until(lambda s=sent: source.bytes >= s, 5.0), f"source read {source.bytes} of {sent} bytes"


@pytest.mark.parametrize("seed", range(6))
def test_any_fragmentation_of_a_real_stream_gives_the_same_messages(pty: tuple[int, str], seed: int) -> None:
    master, path = pty
    data, expected, clocks = performance()
    got = Collector()
    stream = CaptureStream("raw:" + path, 3, got)
    source = RawSource(path, stream)
    source.start()
    try:
        play(source, master, data, random.Random(seed))
    finally:
        source.stop()
    messages, heard_clocks = got.messages()
    assert messages == expected
    assert heard_clocks == clocks
    assert stream.dropped == 0
    assert source.chunks > 1
    assert stream.allocator.in_use == 0


def test_each_message_is_stamped_with_the_arrival_of_its_first_byte(pty: tuple[int, str]) -> None:
    master, path = pty
    got = Collector()
    stream = CaptureStream("raw:" + path, 1, got)
    source = RawSource(path, stream)
    source.start()
    try:
        os.write(master, bytes([0x90, 60]))
        assert wait_until(lambda: source.bytes >= 2, 5.0)
        time.sleep(0.05)
        before_rest = time.monotonic_ns() // 100
        os.write(master, bytes([100]))
        assert wait_until(lambda: len(got.records) == 1, 5.0)
    finally:
        source.stop()
    t, _flags, msg = got.records[0]
    assert msg == bytes([0x90, 60, 100])
    assert t < before_rest - 400_000  # the first chunk's time, ≥ 40 ms before the last byte came


def test_a_tty_is_set_raw_so_no_byte_is_translated(pty: tuple[int, str]) -> None:
    master, path = pty
    got = Collector()
    stream = CaptureStream("raw:" + path, 1, got)
    source = RawSource(path, stream)
    source.start()
    try:
        # CR would become LF and 0x03 a SIGINT under the default line discipline.
        msg = bytes([0xF0, 0x0D, 0x03, 0x11, 0x13, 0x7F, 0xF7])
        os.write(master, msg)
        assert wait_until(lambda: len(got.records) == 1, 5.0)
    finally:
        source.stop()
    assert got.records[0][2] == msg


# Read back through the kernel's own interfaces: termios for the POSIX speed code, and the
# termios2 ioctl (Linux asm-generic/ioctls.h: TCGETS2 = _IOR('T', 0x2A, struct termios2))
# for the actual number a BOTHER speed holds.
TCGETS2 = 0x802C542A
BOTHER = 0o010000
TERMIOS2 = struct.Struct("IIIIB19sII")


def read_speed(path: str) -> tuple[int, int, int, int]:
    """The tty's (input code, output code) from termios and (input, output) baud from termios2."""
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        raw = bytearray(TERMIOS2.size)
        fcntl.ioctl(fd, TCGETS2, raw)
        *_, ispeed, ospeed = TERMIOS2.unpack(raw)
        return attrs[4], attrs[5], ispeed, ospeed
    finally:
        os.close(fd)


def test_a_non_standard_baud_rate_is_set_with_termios2_and_a_standard_one_with_termios(
    pty: tuple[int, str],
) -> None:
    _master, path = pty
    assert read_speed(path) == (termios.B38400, termios.B38400, 38400, 38400)  # a pty's default
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        set_baud(fd, 31250)  # the MIDI rate: no POSIX B-constant, so BOTHER and the number itself
        assert read_speed(path) == (BOTHER, BOTHER, 31250, 31250)
        set_baud(fd, 9600)  # a POSIX speed goes back to its B-constant
        assert read_speed(path) == (termios.B9600, termios.B9600, 9600, 9600)
    finally:
        os.close(fd)


def test_a_raw_source_sets_a_tty_to_the_midi_baud_rate_when_it_opens(pty: tuple[int, str]) -> None:
    _master, path = pty
    source = RawSource(path, CaptureStream("raw:" + path, 1, Collector()))
    source.start()
    try:
        assert read_speed(path) == (BOTHER, BOTHER, 31250, 31250)
    finally:
        source.stop()


def test_an_unplugged_device_is_reported_lost_and_not_offered_while_gone(pty: tuple[int, str]) -> None:
    master, path = pty
    wake = Wake()
    name = "raw:" + path
    backend = RawBackend((name,), wake)
    assert backend.list_sources() == [name]
    src = backend.open_source(name, CaptureStream(name, 1, Collector()))
    os.close(master)  # the adapter is unplugged: the slave side reads EIO and its node goes
    assert wait_until(lambda: not src.running, 5.0)
    assert src.error is not None
    assert wake.wait(1.0)
    assert backend.list_sources() == []
    backend.close_source(src)


def test_a_device_that_comes_back_is_offered_again_within_a_second(tmp_path: Path) -> None:
    path = str(tmp_path / "midi-fifo")
    os.mkfifo(path)
    name = "raw:" + path
    wake = Wake()
    backend = RawBackend((name,), wake)
    got = Collector()
    stream = CaptureStream(name, 1, got)

    def plug_in() -> int:
        # A FIFO reads end-of-file without a writer, so the "device" is a reader held open briefly.
        keep = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(path, os.O_WRONLY)
        backend.open_source(name, stream)
        os.close(keep)
        return w

    w = plug_in()
    os.write(w, bytes([0x90, 60, 100]))
    assert wait_until(lambda: len(got.records) == 1, 5.0)
    first = backend._sources[name]
    os.close(w)  # unplugged: end of file
    assert wait_until(lambda: not first.running, 5.0)
    assert name not in backend.list_sources()
    backend.close_source(first)
    assert wait_until(lambda: backend.list_sources() == [name], 1.0)
    w = plug_in()
    try:
        os.write(w, bytes([0x80, 60, 0]))
        assert wait_until(lambda: len(got.records) == 2, 5.0)
    finally:
        os.close(w)
        backend.close()
    assert [r[2] for r in got.records] == [bytes([0x90, 60, 100]), bytes([0x80, 60, 0])]


def test_a_device_that_does_not_exist_is_not_offered_and_cannot_be_opened() -> None:
    wake = Wake()
    missing = "/dev/mxfd-test-no-such-device"
    backend = RawBackend((missing,), wake)
    assert backend.list_sources() == []  # not offered while the node does not exist
    with pytest.raises(OSError):
        backend.open_source("raw:" + missing, CaptureStream("raw:" + missing, 1, Collector()))
