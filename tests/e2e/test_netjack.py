"""Network MIDI through netJACK2: a keyboard on one JACK server, mxfd and its sound on another.

Two JACK servers on this machine stand for two machines.  Server B is the
run's own ``jackd -d dummy`` (the ``jack_server`` fixture), with mxfd, the ear
and JACK 2's ``netmanager`` loaded into it: the machine with the speakers.
Server A is ``jackd -d net``, a netJACK2 slave with one MIDI channel back to
the master: the machine with the keyboard.  Both are told the master's address
explicitly, 127.0.0.1, so nothing goes to netJACK's multicast group (225.3.19.154)
or leaves the machine: the master's attempt to join the "multicast group"
127.0.0.1 fails, and the two talk over one UDP socket connected from 127.0.0.1
to 127.0.0.1, which ``test_nothing_goes_to_the_multicast_group_or_off_the_machine``
reads from the servers' logs and /proc.  The UDP port is one the kernel had
free, so parallel runs never meet.

On B the slave is a client ``test-net-a`` with a MIDI output port
``test-net-a:midi_from_slave_1``: to mxfd's hot-plug it is one more keyboard.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Iterator, NamedTuple, Optional

import numpy as np
import pytest

from tests import calm
from tests.e2e.ears import Ear, dominant_frequency, rms_dbfs, wait_until
from tests.e2e.test_daemon import CONFIG, Daemon, connected
from tests.jackserver import JackServer, die_with_parent

pytestmark = pytest.mark.e2e

NET_CLIENT = "test-net-a"
NET_PORT = f"{NET_CLIENT}:midi_from_slave_1"
#: netJACK2's default discovery group, which nothing here may join or send to.
MULTICAST = "225.3.19.154"
A4 = 69

EXCLUDED = CONFIG.replace('include = ["^test-"]', f'include = ["^test-"]\nexclude = ["^{NET_CLIENT}:"]')


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def jack_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def master(jack_server: JackServer) -> Iterator[int]:
    """``netmanager`` in server B, listening on 127.0.0.1 only; its UDP port."""
    port = free_udp_port()
    load = jack_tool("jack_load", "-s", jack_server.name, "netmanager", "-i", f"-a 127.0.0.1 -p {port}")
    assert load.returncode == 0, load.stdout + load.stderr
    try:
        yield port
    finally:
        jack_tool("jack_unload", "-s", jack_server.name, "netmanager")


@pytest.fixture(scope="module")
def daemon(master: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``mxfd run`` on server B, started before the keyboard's machine joins (it is plugged in later)."""
    d = Daemon(tmp_path_factory.mktemp("mxfd-netjack"), CONFIG, "--audio-pin", "portaudio")
    try:
        assert d.wait_for("READY=1", 30.0) is not None, "no READY=1\n" + d.output()
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def server_a(master: int, daemon: Daemon) -> Iterator[JackServer]:
    """Server A: ``jackd -d net``, a slave of B's netmanager at 127.0.0.1, sending one MIDI channel to it."""
    driver = ["net", "-a", "127.0.0.1", "-p", str(master), "-n", NET_CLIENT,
              "-C", "0", "-P", "0", "-i", "0", "-o", "1"]
    server = JackServer.start_free("mxfd-net", driver=driver)
    try:
        yield server
    finally:
        server.stop()


#: The keyboard on server A: a JACK-Client MIDI output in a process of its own (see ears.Keyboard for why
#: not in the test's), connected to the slave's MIDI channel to the master.  Each line of hex from stdin is
#: written at the start of the next cycle, answered with the monotonic time that cycle started at and the
#: monotonic times of the xruns its server reported since the last answer.
_NET_KEYBOARD = """
import ctypes, queue, signal, sys, time
ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
import jack
client = jack.Client(sys.argv[1], servername=sys.argv[2], no_start_server=True)
port = client.midi_outports.register("out")
pending, sent = queue.SimpleQueue(), queue.SimpleQueue()
xruns = queue.SimpleQueue()

@client.set_xrun_callback
def xrun(delayed_usecs):
    xruns.put(time.monotonic())

@client.set_process_callback
def process(frames):
    port.clear_buffer()
    if not pending.empty():
        port.write_midi_event(0, pending.get())
        sent.put(time.monotonic() - client.frames_since_cycle_start / client.samplerate)

client.activate()
client.connect(port, sys.argv[3])
print("ready", flush=True)
for line in sys.stdin:
    pending.put(bytes.fromhex(line))
    times = [sent.get()]
    while not xruns.empty():
        times.append(xruns.get())
    print(*times, flush=True)
"""


class NetKeyboard:
    """A MIDI keyboard on another JACK server than the default: ``<name>:out`` on ``server``, into ``target``."""

    def __init__(self, server: str, target: str, name: str = "test-remote-kbd") -> None:
        self.name = name
        self.xruns: list[float] = []  # when its server reported xruns (monotonic s), as of the last message
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _NET_KEYBOARD, name, server, target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
        )
        if self._line(10.0) != "ready":
            self.close()
            raise RuntimeError(f"the keyboard on {server!r} did not open its port (exit status {self._proc.poll()})")
        # A fresh process's first callbacks with an event can overrun their cycle (first calls into cffi),
        # which delays that event by cycles: warm up with note-offs for no note before timing anything.
        for _ in range(3):
            self.send(0x8F, 0, 0)

    def _line(self, timeout: float) -> Optional[str]:
        out: IO[str] = self._proc.stdout  # type: ignore[assignment]
        if not select.select([out], [], [], timeout)[0]:
            return None
        return out.readline().strip()

    def send(self, *message: int) -> float:
        """Play ``message``; returns the time, in seconds on the monotonic clock, of the cycle it went out in."""
        stdin: IO[str] = self._proc.stdin  # type: ignore[assignment]
        stdin.write(bytes(message).hex() + "\n")
        stdin.flush()
        answer = self._line(10.0)
        if not answer:
            raise RuntimeError(f"the keyboard {self.name!r} did not answer (exit status {self._proc.poll()})")
        sent, *xruns = (float(t) for t in answer.split())
        self.xruns += xruns
        return sent

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        for f in (self._proc.stdin, self._proc.stdout):
            if f is not None and not f.closed:
                f.close()


@pytest.fixture(scope="module")
def keyboard(server_a: JackServer) -> Iterator[NetKeyboard]:
    k = NetKeyboard(server_a.name, "system:midi_playback_1")
    try:
        yield k
    finally:
        k.close()


def onset_index(heard: np.ndarray, threshold: float = 1e-3) -> Optional[int]:
    """The first sample of ``heard`` above ``threshold``, or None."""
    loud = np.flatnonzero(np.abs(heard) > threshold)
    return int(loud[0]) if len(loud) else None


def settle(ear: Ear, seconds: float = 3.0, level: float = -70.0) -> bool:
    """Wait until the daemon's output is silent again (release tails and reverb gone); False if it is not."""
    return wait_until(lambda: rms_dbfs(ear.since(ear.mark() - int(0.1 * ear.rate))) < level, seconds)


class Take(NamedTuple):
    heard: np.ndarray
    sent: float  #: when the note left its keyboard's server (monotonic s)
    onset: Optional[float]  #: when the ear heard it start (monotonic s)
    disturbed: str  #: why the take may be off ("" if nothing was): xruns, missed cycles, underruns


def play_a4(daemon: Daemon, ear: Ear, keyboard: NetKeyboard, seconds: float = 0.2) -> Take:
    """Hold A4 for ``seconds`` and wait for silence: what the ear on B heard, when, and what disturbed it.

    Across an xrun JACK may lose or repeat MIDI events and cut periods out of the ear's recording, and an
    underrun puts silence into mxfd's output: a take is disturbed by an xrun on either server from a cycle
    before the note-on until JACK has had time to report one after the onset, or by any underrun.  A note
    left sounding by a lost note-off is stopped with All Notes Off.
    """
    underruns = daemon.status()["audio"]["ring_underruns"]
    mark = ear.mark()
    sent = keyboard.send(0x90, A4, 100)
    time.sleep(seconds)
    keyboard.send(0x80, A4, 0)
    heard = ear.since(mark)
    at = onset_index(heard)
    onset = None
    if at is not None:
        onset = ear.time_of(mark + at) / 1e9
    until = (onset if onset is not None else sent + seconds) + REPORT_DELAY_S
    why = []
    if any(sent - 0.01 <= t <= until for t in keyboard.xruns):
        why.append("xruns on the keyboard's server")
    last = (at if at is not None else len(heard)) + int(REPORT_DELAY_S * ear.rate)
    if [d for d in ear.disturbances(mark) if d <= last]:
        why.append(f"xruns or missed cycles on B at frames {ear.disturbances(mark)[:8]}")
    if not settle(ear):
        # the note-off may have been lost in an xrun on either server since the note-on
        keyboard.send(0xB0, 123, 0)  # All Notes Off; its answer brings the xruns reported meanwhile
        xruns = [t for t in keyboard.xruns if t >= sent - 0.01]
        assert xruns or ear.disturbances(mark), "A4 still sounds after its note-off, and nothing disturbed it"
        assert settle(ear), "A4 still sounds after All Notes Off"
        why.append("the note-off was lost")
    if daemon.status()["audio"]["ring_underruns"] != underruns:
        why.append("underruns in mxfd")
    return Take(heard, sent, onset, "; ".join(why))


#: How long after an xrun JACK may take to report it (s).
REPORT_DELAY_S = 0.05
#: Takes with nothing disturbing them that the latency is measured in.
CLEAN_TAKES = 3


# -- the tests -------------------------------------------------------------------------


def test_the_net_clients_midi_port_is_hot_plugged_like_a_keyboard(daemon: Daemon, server_a: JackServer) -> None:
    assert wait_until(lambda: connected(NET_PORT), 2.0), daemon.output()[-3000:]


def udp_sockets(pid: int) -> list[tuple[str, str]]:
    """(local, remote) ``address:port`` of each UDP socket process ``pid`` holds, IPv4 and IPv6."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[9] in inodes:
                found.append((_address(f[1]), _address(f[2])))
    return found


def _address(hexed: str) -> str:
    """``0100007F:4BB1`` (as /proc/net/udp writes it) as ``127.0.0.1:19377``; IPv6 stays in hex."""
    host, port = hexed.split(":")
    if len(host) == 8:
        host = ".".join(str(b) for b in reversed(bytes.fromhex(host)))
    return f"{host}:{int(port, 16)}"


def test_nothing_goes_to_the_multicast_group_or_off_the_machine(
    jack_server: JackServer, master: int, server_a: JackServer
) -> None:
    log = Path(jack_server.log_path).read_text(errors="replace")
    assert f"Listening on '127.0.0.1:{master}'" in log
    assert "Can't join multicast group" in log  # 127.0.0.1 is no group: the master joined none
    group = "".join(f"{int(b):02X}" for b in reversed(MULTICAST.split(".")))
    assert group not in Path("/proc/net/igmp").read_text()
    # The slave was given the master's address and talks to it over one connected socket, which can send
    # to its peer only.  The master holds that socket's other end and its listener, which answers only
    # who spoke to it (here: the slave, from 127.0.0.1).
    assert server_a.proc is not None and jack_server.proc is not None
    assert [remote.split(":")[0] for _, remote in udp_sockets(server_a.proc.pid)] == ["127.0.0.1"]
    ends = udp_sockets(jack_server.proc.pid)
    assert (f"0.0.0.0:{master}", "0.0.0.0:0") in ends
    assert {(loc.split(":")[0], rem.split(":")[0]) for loc, rem in ends if rem != "0.0.0.0:0"} == {
        ("127.0.0.1", "127.0.0.1")
    }
    assert len(ends) == 2, ends


def test_a_note_played_on_server_a_is_heard_from_mxfd_on_server_b(
    daemon: Daemon, jack_server: JackServer, keyboard: NetKeyboard, ear: Ear
) -> None:
    assert wait_until(lambda: connected(NET_PORT), 2.0)
    takes = []
    for _ in (plays := calm.Takes(lambda: len(ear.xruns))):
        take = play_a4(daemon, ear, keyboard, seconds=0.4)
        takes.append(f"{rms_dbfs(take.heard):.1f} dBFS; {take.disturbed}")
        if not take.disturbed:
            break
    else:
        pytest.fail("every take was disturbed:\n" + "\n".join(takes) + "\n" + plays.report())
    assert rms_dbfs(take.heard) > -40, "no sound\n" + daemon.output()[-3000:]
    loud = take.heard[np.abs(take.heard) > 0][-int(0.3 * ear.rate) :]
    assert abs(dominant_frequency(loud, ear.rate) - 440.0) < 440.0 * 0.005


def test_netjack_adds_its_network_latency_and_one_cycle_to_key_to_sound(
    daemon: Daemon, jack_server: JackServer, keyboard: NetKeyboard, ear: Ear
) -> None:
    # Against the same keyboard on B itself, measured the same way, in takes nothing disturbed: an xrun
    # (a loaded machine skipping a cycle) on either server or an underrun in mxfd shifts a note by cycles.
    assert wait_until(lambda: connected(NET_PORT), 2.0)
    local = NetKeyboard(jack_server.name, "mxfd:in", name="test-local-kbd")
    cycle_ms = jack_server.period / jack_server.rate * 1000
    takes: list[str] = []
    clean: list[tuple[float, float]] = []  # (over netJACK2, on B) ms, in the undisturbed takes
    try:
        for _ in (plays := calm.Takes(lambda: len(ear.xruns))):
            net, near = play_a4(daemon, ear, keyboard, 0.1), play_a4(daemon, ear, local, 0.1)
            for take in (net, near):
                assert take.onset is not None or take.disturbed, "a note was not heard, and nothing disturbed it"
            if net.onset is None or near.onset is None:
                takes.append(f"a note lost; {net.disturbed} {near.disturbed}")
                continue
            net_ms, local_ms = (net.onset - net.sent) * 1000, (near.onset - near.sent) * 1000
            takes.append(f"{net_ms:.1f} ms over netJACK2, {local_ms:.1f} ms on B; {net.disturbed} {near.disturbed}")
            if not net.disturbed and not near.disturbed:
                clean.append((net_ms, local_ms))
                if len(clean) == CLEAN_TAKES:
                    break
        else:
            pytest.fail(f"fewer than {CLEAN_TAKES} takes undisturbed:\n" + "\n".join(takes) + "\n" + plays.report())
    finally:
        local.close()
    added = sorted((n - b) / cycle_ms for n, b in clean)
    median = float(np.median(added))
    net_ms, local_ms = (float(np.median([t[i] for t in clean])) for i in (0, 1))
    print(f"\nkey-to-sound (median of {len(clean)} undisturbed takes of {len(takes)}): {net_ms:.1f} ms from server A "
          f"over netJACK2 (latency 5 cycles), {local_ms:.1f} ms from a keyboard on B; the network adds {median:.1f} "
          f"cycles ({', '.join(f'{a:.2f}' for a in added)})")
    # netJACK2's default latency is 5 cycles, and the slave's cycle adds one: it starts when the master's
    # packet reaches it (6.0 in every take on a quiet machine).  On a loaded one either path may take a
    # cycle more now and then, and the slave, which only follows the master's packets, may fall a few
    # behind: the least of the takes is the path's own latency, load only adds to it.
    assert 4.5 < added[0] < 7.5, takes
    assert added[-1] < 15, takes


def test_the_net_client_is_excluded_by_name_when_configured(
    daemon: Daemon, keyboard: NetKeyboard, ear: Ear
) -> None:
    assert "exclude" in EXCLUDED and wait_until(lambda: connected(NET_PORT), 2.0)
    assert settle(ear)
    try:
        daemon.config_path.write_text(EXCLUDED)
        with daemon._lock:
            daemon.messages.clear()
        daemon.proc.send_signal(signal.SIGHUP)
        assert daemon.wait_for("READY=1", 5.0) is not None
        assert wait_until(lambda: not connected(NET_PORT), 2.0), daemon.output()[-2000:]
        heard = play_a4(daemon, ear, keyboard).heard
        assert rms_dbfs(heard) < -70, f"an excluded net client was heard at {rms_dbfs(heard):.1f} dBFS"
    finally:
        daemon.config_path.write_text(CONFIG)
        daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.wait_for("READY=1", 5.0) is not None
    assert wait_until(lambda: connected(NET_PORT), 2.0)


def test_a_note_held_from_server_a_is_released_when_a_leaves(
    daemon: Daemon, server_a: JackServer, keyboard: NetKeyboard, ear: Ear
) -> None:
    # the last test: it stops server A, as unplugging the keyboard's machine would
    assert wait_until(lambda: connected(NET_PORT), 2.0)
    assert settle(ear)
    keyboard.send(0xC0, 19)  # church organ: sustains as long as it is held
    keyboard.send(0x90, A4, 100)
    assert wait_until(lambda: rms_dbfs(ear.since(ear.mark() - int(0.1 * ear.rate))) > -40, 2.0), "no sound"
    server_a.stop()
    gone = f"{NET_PORT}: gone, closing"
    assert wait_until(lambda: gone in daemon.output(), 3.0), daemon.output()[-2000:]
    assert settle(ear), "the note held from server A still sounds after A left"
