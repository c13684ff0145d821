"""IMXF: KSState, the node plumbing (one output, defaulting to the allocator) and ownership."""

from __future__ import annotations

from typing import Iterator

import pytest

from mxfd.core.allocator import Allocator
from mxfd.core.mxf import MXF, KSState, MXFNode
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import encode_buffer
from tests.core.helpers import Recorder, chain_of


@pytest.fixture
def alloc() -> Iterator[Allocator]:
    a = Allocator(pool_size=16, buffer_size=64, debug=True)
    yield a
    assert a.is_idle(), a.counters()


def test_ksstate_has_the_original_values() -> None:
    assert [int(s) for s in (KSState.STOP, KSState.ACQUIRE, KSState.PAUSE, KSState.RUN)] == [0, 1, 2, 3]


def test_nodes_start_in_run_with_the_allocator_as_output(alloc: Allocator) -> None:
    node = MXFNode(alloc)
    assert node.state is KSState.RUN
    assert node.output is alloc
    assert node.allocator is alloc


def test_set_state_accepts_plain_integers(alloc: Allocator) -> None:
    node = MXFNode(alloc)
    node.set_state(2)  # type: ignore[arg-type]
    assert node.state is KSState.PAUSE
    with pytest.raises(ValueError):
        node.set_state(7)  # type: ignore[arg-type]


def test_connect_output_names_the_one_sink(alloc: Allocator) -> None:
    node = MXFNode(alloc)
    sink = Recorder()
    node.connect_output(sink)
    assert node.output is sink
    node.connect_output(sink)  # the same sink again is harmless
    with pytest.raises(ValueError, match="disconnect it first"):
        node.connect_output(Recorder())


def test_connect_output_needs_a_sink(alloc: Allocator) -> None:
    with pytest.raises(ValueError, match="needs a sink"):
        MXFNode(alloc).connect_output(None)  # type: ignore[arg-type]


def test_disconnect_output_reverts_to_the_allocator(alloc: Allocator) -> None:
    node = MXFNode(alloc)
    sink = Recorder()
    node.connect_output(sink)
    with pytest.raises(ValueError, match="is not the output"):
        node.disconnect_output(Recorder())
    node.disconnect_output(sink)
    assert node.output is alloc
    node.connect_output(sink)
    node.disconnect_output(None)  # None means "whatever it is"
    assert node.output is alloc


def test_every_node_and_the_allocator_speak_imxf(alloc: Allocator) -> None:
    for obj in (alloc, Unpacker(alloc), Sequencer(alloc), Recorder()):
        assert isinstance(obj, MXF)


def test_an_unconnected_node_returns_events_to_the_allocator(alloc: Allocator) -> None:
    unpacker = Unpacker(alloc)
    start, data = encode_buffer([(0, 1, b"\x90\x3c\x40"), (10, 1, b"\x80\x3c\x00")])
    assert unpacker.unpack(data, start) == 2
    unpacker.put_message(chain_of(alloc, (0, b"\xf8")))
    sequencer = Sequencer(alloc)
    sequencer.put_message(chain_of(alloc, (0, b"\xfa"), (5, b"\xfc")))
    assert sequencer.release(10) == 2
    assert alloc.is_idle()


def test_a_stopped_node_returns_what_it_is_given_to_the_allocator(alloc: Allocator) -> None:
    sink = Recorder()
    for node in (Unpacker(alloc), Sequencer(alloc)):
        node.connect_output(sink)
        node.set_state(KSState.STOP)
        node.put_message(chain_of(alloc, (0, b"\x90\x3c\x40"), (1, b"\x80\x3c\x00")))
        assert alloc.is_idle()
        assert node.discarded == 2
    assert sink.chains == []


def test_put_message_hands_the_chain_to_the_output(alloc: Allocator) -> None:
    sink = Recorder()
    node = Unpacker(alloc)
    node.connect_output(sink)
    node.put_message(chain_of(alloc, (3, b"\x90\x3c\x40"), (4, b"\x80\x3c\x00")))
    assert [s.data for s in sink.chains[0]] == [b"\x90\x3c\x40", b"\x80\x3c\x00"]
    assert alloc.is_idle()  # the recorder returned them, as a real last stop does
