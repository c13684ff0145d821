"""Placeholder: being written."""
from mxfd.core.mxf import MXFNode


class Packer(MXFNode):
    pass
