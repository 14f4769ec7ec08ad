"""The python-can Bus for canserver: ``can.Bus('host[:port]', interface='remote')``."""
import logging
import re
import select
import socket
import time

import can

from . import protocol

log = logging.getLogger("can.remote")


def _parse_channel(channel):
    channel = str(channel)
    if channel.startswith("["):  # [v6addr]:port
        host, _, rest = channel[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif channel.count(":") == 1:
        host, port = channel.split(":")
    else:
        host, port = channel, ""
    try:
        return host or "localhost", int(port) if port else protocol.DEFAULT_PORT
    except ValueError:
        raise can.CanInitializationError("channel %r: port %r is not a number" % (channel, port)) from None


class _VersionRefused(Exception):
    """The server does not speak the protocol version asked for."""


class RemoteBus(can.BusABC):
    """A CAN bus on a canserver (or any server speaking the remote CAN protocol v5).

    :param channel: ``"host[:port]"``, port 54701 by default.
    :param fd: CAN FD: asks for protocol version 6, so FD messages (``is_fd``,
        ``bitrate_switch``, ``error_state_indicator``) travel both ways. A server that only
        speaks version 5 (the original) is used with version 5, classic frames only, with a
        warning. Without ``fd`` the session is version 5 and FD frames on the bus are not
        received (canserver counts them for this client).
    :param bitrate: the bit rate this client expects; 0 (the default) accepts whatever the bus
        runs at. canserver refuses a different rate by default (``--bitrate-policy check``) and
        reports the bus's real rate in ``channel_info``.
    :param can_filters: python-can filters, applied by the server.
    :param connect_timeout: seconds to connect and complete the handshake.
    """

    def __init__(self, channel, can_filters=None, bitrate=0, connect_timeout=10.0, fd=False, **kwargs):
        self._host, self._port = _parse_channel(channel)
        self._transmit_failures = 0
        if fd:
            try:
                value = self._connect(bitrate, can_filters, connect_timeout, protocol.PROTOCOL_VERSION_FD)
            except _VersionRefused:
                log.warning("canserver at %s:%d does not speak protocol version 6: no CAN FD",
                            self._host, self._port)
                value = self._connect(bitrate, can_filters, connect_timeout, protocol.PROTOCOL_VERSION)
        else:
            value = self._connect(bitrate, can_filters, connect_timeout, protocol.PROTOCOL_VERSION)
        self.channel_info = "%s on %s:%d" % (value, self._host, self._port)
        # Received messages name the server's channel ("can0"), as SocketCAN's would on the rig,
        # so logs read like candump's; other servers' info falls back to host:port.
        m = re.search(r"channel '([^']+)'", value)
        self._msg_channel = m.group(1) if m else "%s:%d" % (self._host, self._port)
        self._open = False  # BusABC.__init__ applies (no) filters; the handshake already sent ours
        super().__init__(channel=channel, can_filters=None, **kwargs)
        self._open = True

    def _connect(self, bitrate, can_filters, connect_timeout, version):
        """Connects and completes the handshake with `version`; returns the BusResponse text."""
        self._decoder = protocol.Decoder()
        self._fd = version == protocol.PROTOCOL_VERSION_FD
        try:
            self._sock = socket.create_connection((self._host, self._port), timeout=connect_timeout)
        except OSError as e:
            raise can.CanInitializationError(
                "cannot connect to canserver at %s:%d: %s" % (self._host, self._port, e)
            ) from e
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(protocol.bus_request(bitrate, version) + protocol.filter_config(can_filters))
        try:
            event = self._read_event(time.monotonic() + connect_timeout)
        except can.CanOperationError as e:
            self._sock.close()
            # The original server answers a version it does not know by closing the connection.
            if self._fd and "connection closed" in str(e):
                raise _VersionRefused() from e
            raise can.CanInitializationError("handshake error: %s" % e) from e
        if event is None:
            self._sock.close()
            raise can.CanInitializationError("handshake error: no answer from %s:%d" % (self._host, self._port))
        eid, value = event
        if eid == protocol.REMOTE_EXCEPTION:
            self._sock.close()
            if self._fd and "version" in value:
                raise _VersionRefused()
            raise can.CanInitializationError(value)
        if eid != protocol.BUS_RESPONSE:
            self._sock.close()
            raise can.CanInitializationError("handshake error: unexpected event %d" % eid)
        self._sock.settimeout(None)
        return value

    @property
    def fd(self):
        """True when the session speaks protocol version 6 and carries CAN FD frames."""
        return self._fd

    @property
    def transmit_failures(self):
        """TransmitFail events received: frames of ours the bus refused."""
        return self._transmit_failures

    def fileno(self):
        return self._sock.fileno()

    def _read_event(self, deadline):
        while True:
            try:
                event = self._decoder.next()
            except protocol.ProtocolError as e:
                raise can.CanOperationError("protocol error from server: %s" % e) from e
            if event is not None:
                return event
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if not readable:
                return None
            try:
                data = self._sock.recv(65536)
            except OSError as e:
                raise can.CanOperationError("connection closed unexpectedly: %s" % e) from e
            if not data:
                raise can.CanOperationError("connection closed unexpectedly")
            self._decoder.feed(data)

    def _recv_internal(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._read_event(deadline)
            if event is None:
                return None, True
            eid, value = event
            if eid == protocol.CAN_MESSAGE:
                timestamp, arbitration_id, dlc, flags, data = value
                remote = bool(flags & protocol.FLAG_REMOTE)
                msg = can.Message(
                    timestamp=timestamp,
                    arbitration_id=arbitration_id,
                    is_extended_id=bool(flags & protocol.FLAG_EXTENDED),
                    is_remote_frame=remote,
                    is_error_frame=bool(flags & protocol.FLAG_ERROR),
                    dlc=dlc,
                    data=None if remote else data[:dlc],
                    channel=self._msg_channel,
                    check=False,
                )
                return msg, True
            if eid == protocol.CAN_FD_MESSAGE:
                timestamp, arbitration_id, length, flags, data = value
                msg = can.Message(
                    timestamp=timestamp,
                    arbitration_id=arbitration_id,
                    is_extended_id=bool(flags & protocol.FLAG_EXTENDED),
                    is_error_frame=bool(flags & protocol.FLAG_ERROR),
                    is_fd=True,
                    bitrate_switch=bool(flags & protocol.FLAG_BRS),
                    error_state_indicator=bool(flags & protocol.FLAG_ESI),
                    dlc=length,
                    data=data,
                    channel=self._msg_channel,
                    check=False,
                )
                return msg, True
            if eid == protocol.TRANSMIT_FAIL:
                self._transmit_failures += 1
                log.warning("canserver: the bus refused a frame we sent")
                continue
            if eid == protocol.REMOTE_EXCEPTION:
                raise can.CanOperationError(value)
            if eid == protocol.CONNECTION_CLOSED:
                raise can.CanOperationError("connection closed unexpectedly")

    def send(self, msg, timeout=None):
        try:
            data = protocol.can_message(msg, self._fd)
        except ValueError as e:
            raise can.CanOperationError(str(e)) from e
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise can.CanOperationError("connection closed unexpectedly: %s" % e) from e

    def _send_periodic_internal(self, msgs, period, duration=None, **kwargs):
        if isinstance(msgs, can.Message):
            msgs = [msgs]
        if len(msgs) != 1:
            raise can.CanOperationError("the remote protocol runs one message per periodic task")
        return RemoteCyclicTask(self, msgs[0], period, duration)

    def _apply_filters(self, filters):
        # The server filters; python-can's own check in recv() would only repeat its work.
        if getattr(self, "_open", False):
            self._sock.sendall(protocol.filter_config(filters))
        self._filters = None

    def shutdown(self):
        super().shutdown()
        # Half-close, then read to the server's close: the server writes what it still holds of
        # ours to the bus first. Closing with unread data would reset the connection, and the
        # kernel would throw away whatever of ours it had not sent yet. Bounded to 5 s.
        try:
            self._sock.shutdown(socket.SHUT_WR)
            self._sock.settimeout(5.0)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self._sock.recv(65536):
                pass
        except OSError:
            pass
        self._sock.close()


class RemoteCyclicTask(can.broadcastmanager.LimitedDurationCyclicSendTaskABC,
                       can.broadcastmanager.ModifiableCyclicTaskABC,
                       can.broadcastmanager.RestartableCyclicTaskABC):
    """A periodic transmission timed by the server (the kernel's broadcast manager on SocketCAN)."""

    def __init__(self, bus, message, period, duration=None):
        super().__init__(message, period, duration)
        self._bus = bus
        self.start()

    def start(self):
        try:
            data = protocol.periodic_start(self.messages[0], self.period, self.duration, self._bus.fd)
        except ValueError as e:
            raise can.CanOperationError(str(e)) from e
        self._bus._sock.sendall(data)

    def stop(self):
        self._bus._sock.sendall(protocol.periodic_stop(self.messages[0].arbitration_id))

    def modify_data(self, messages):
        if isinstance(messages, can.Message):
            messages = [messages]
        self._check_modified_messages(messages)
        self.messages = messages
        self.start()
