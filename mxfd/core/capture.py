"""Placeholder: being written."""
from mxfd.core.mxf import MXFNode


class CaptureSink(MXFNode):
    pass
