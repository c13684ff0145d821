"""Placeholder: being written."""
from mxfd.core.mxf import MXFNode


class Unpacker(MXFNode):
    pass
