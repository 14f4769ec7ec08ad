"""python-can's ``remote`` interface: a CAN bus served by canserver over TCP (protocol v5).

    import can
    bus = can.Bus('rig1:54701', interface='remote', bitrate=500000)
"""
from .bus import RemoteBus, RemoteCyclicTask
from .protocol import DEFAULT_PORT

__all__ = ["RemoteBus", "RemoteCyclicTask", "DEFAULT_PORT"]
