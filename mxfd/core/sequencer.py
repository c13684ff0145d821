"""Placeholder: being written."""
from mxfd.core.mxf import MXFNode

DONT_HOLD_FOR_SEQUENCING = 0x8000000000000000


class Sequencer(MXFNode):
    pass
