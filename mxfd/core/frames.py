"""Placeholder: being written."""
class AllocatorFraming:
    pass


class DefaultFrameAllocator:
    pass
