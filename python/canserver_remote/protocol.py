"""Remote CAN protocol version 5, and version 6 (5 plus CAN FD): encoding and a decoder.

Every event is one id byte and a payload whose length follows from the id (for the CAN FD
events, from their length byte); integers are big-endian. See docs/protocol.md in the canserver
repository.
"""
import struct

PROTOCOL_VERSION = 5
PROTOCOL_VERSION_FD = 6
DEFAULT_PORT = 54701

BUS_REQUEST = 1
BUS_RESPONSE = 2
CAN_MESSAGE = 3
TRANSMIT_SUCCESS = 4
TRANSMIT_FAIL = 5
REMOTE_EXCEPTION = 6
PERIODIC_START = 7
PERIODIC_STOP = 8
FILTER_CONFIG = 10
CAN_FD_MESSAGE = 11  # version 6
PERIODIC_FD_START = 12  # version 6
LEASE_REQUEST = 13  # canserver: the channel's exclusive transmit lease
LEASE_RESPONSE = 14  # canserver
RESUME_REQUEST = 15  # canserver: a session that survives its connection
RESUME_RESPONSE = 16  # canserver
RESUME_REFUSED, RESUME_RESUMABLE, RESUME_RESUMED = 0, 1, 2
CONNECTION_CLOSED = 255

FLAG_EXTENDED = 0x01
FLAG_REMOTE = 0x02
FLAG_ERROR = 0x04
FLAG_FD = 0x08
FLAG_BRS = 0x10
FLAG_ESI = 0x20
FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)

_CAN_MESSAGE = struct.Struct(">dIBB8s")  # after the id byte: 22 bytes
_PERIODIC = struct.Struct(">iiIBB8s")
_CAN_FD_HEADER = struct.Struct(">dIBB")  # after the id byte: 14 bytes, then `length` data bytes
_PERIODIC_FD_HEADER = struct.Struct(">iiIBB")


class ProtocolError(Exception):
    """The peer sent bytes that are not protocol v5."""


def _string(event_id, text):
    data = text.encode("utf-8")
    if len(data) > 255:  # cut at a character boundary
        data = data[:255].decode("utf-8", "ignore").encode("utf-8")
    return bytes([event_id, len(data)]) + data


def bus_request(bitrate, version=PROTOCOL_VERSION):
    return struct.pack(">BBi", BUS_REQUEST, version, int(bitrate or 0))


def filter_config(filters):
    """python-can filter dicts {can_id, can_mask[, extended]} as a FilterConfig event."""
    filters = list(filters or [])
    if len(filters) > 255:
        raise ValueError("protocol v5 allows at most 255 filters")
    out = bytearray([FILTER_CONFIG, len(filters)])
    for f in filters:
        can_id = f["can_id"] & 0x1FFFFFFF
        can_mask = f["can_mask"] & 0x1FFFFFFF
        if "extended" in f:
            can_mask |= 0x80000000
            if f["extended"]:
                can_id |= 0x80000000
        out += struct.pack(">II", can_id, can_mask)
    return bytes(out)


def _check_id(arbitration_id, extended):
    limit = 0x1FFFFFFF if extended else 0x7FF
    if not 0 <= arbitration_id <= limit:
        raise ValueError(
            "arbitration id 0x%X does not fit a %s frame" % (arbitration_id, "29-bit" if extended else "11-bit")
        )


def _fd_flags(msg):
    flags = FLAG_FD | (FLAG_EXTENDED if msg.is_extended_id else 0)
    flags |= FLAG_BRS if msg.bitrate_switch else 0
    return flags | (FLAG_ESI if msg.error_state_indicator else 0)


def _fd_payload(msg):
    if msg.is_remote_frame:
        raise ValueError("CAN FD has no remote frames")
    if msg.dlc not in FD_LENGTHS:
        raise ValueError("length %d is not a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64)" % msg.dlc)
    return bytes(msg.data[: msg.dlc]).ljust(msg.dlc, b"\0")


def can_message(msg, fd=False):
    """CanMessage, or CanFdMessage for an FD message when the session speaks version 6 (fd)."""
    if getattr(msg, "is_fd", False):
        if not fd:
            raise ValueError("this bus speaks protocol version 5, which cannot carry CAN FD frames "
                             "(open it with fd=True; a server without version 6 cannot either)")
        _check_id(msg.arbitration_id, msg.is_extended_id)
        flags = _fd_flags(msg) | (FLAG_ERROR if msg.is_error_frame else 0)
        data = _fd_payload(msg)
        return bytes([CAN_FD_MESSAGE]) + _CAN_FD_HEADER.pack(
            float(msg.timestamp or 0.0), msg.arbitration_id, len(data), flags) + data
    _check_id(msg.arbitration_id, msg.is_extended_id)
    if msg.dlc > 8:
        raise ValueError("dlc %d is over 8" % msg.dlc)
    flags = (FLAG_EXTENDED if msg.is_extended_id else 0) | (FLAG_REMOTE if msg.is_remote_frame else 0)
    flags |= FLAG_ERROR if msg.is_error_frame else 0
    data = b"" if msg.is_remote_frame else bytes(msg.data[: msg.dlc])
    return bytes([CAN_MESSAGE]) + _CAN_MESSAGE.pack(
        float(msg.timestamp or 0.0), msg.arbitration_id, msg.dlc, flags, data.ljust(8, b"\0")
    )


def periodic_start(msg, period, duration, fd=False):
    _check_id(msg.arbitration_id, msg.is_extended_id)
    period_ms = int(round(period * 1000))
    if period_ms < 1:
        raise ValueError("period must be at least 1 ms")
    duration_ms = int(round((duration or 0) * 1000))
    if getattr(msg, "is_fd", False):
        if not fd:
            raise ValueError("this bus speaks protocol version 5: no CAN FD periodic jobs "
                             "(open it with fd=True; a server without version 6 cannot either)")
        data = _fd_payload(msg)
        return bytes([PERIODIC_FD_START]) + _PERIODIC_FD_HEADER.pack(
            period_ms, duration_ms, msg.arbitration_id, len(data), _fd_flags(msg)) + data
    data = bytes(msg.data[: msg.dlc]).ljust(8, b"\0")
    return bytes([PERIODIC_START]) + _PERIODIC.pack(
        period_ms, duration_ms, msg.arbitration_id, msg.dlc, 1 if msg.is_extended_id else 0, data
    )


def lease_request(seconds, token=""):
    """LeaseRequest: take or renew (seconds > 0), release (0), or join the lease with `token`."""
    data = token.encode("ascii")
    return struct.pack(">BiB", LEASE_REQUEST, int(seconds), len(data)) + data


def resume_request(token="", frames_received=0):
    """ResumeRequest: without a token, after the handshake, asks the server to keep the session
    after a break; with one, as a new connection's first event, takes that session back."""
    data = token.encode("ascii")
    return struct.pack(">BB", RESUME_REQUEST, len(data)) + data + struct.pack(">Q", frames_received)


def periodic_stop(arbitration_id):
    return struct.pack(">BI", PERIODIC_STOP, arbitration_id)


def _two_texts_size(b, at):
    """The size of an event whose fixed part ends with a length byte at `at`, followed by that
    text and one more length-prefixed text (LeaseResponse, ResumeResponse); None if incomplete."""
    if len(b) <= at or len(b) < at + 2 + b[at]:
        return None
    return at + 2 + b[at] + b[at + 1 + b[at]]


class Decoder:
    """Incremental decoder: feed() bytes as they come, then next() events until it returns None."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data

    def buffered(self):
        return len(self._buf)

    def has_event(self):
        """True if a whole event is buffered (next() would return it without more bytes)."""
        if not self._buf:
            return False
        size = self._size()  # raises ProtocolError for bytes that are no event: next() says so
        return size is not None and len(self._buf) >= size

    def _size(self):
        b = self._buf
        eid = b[0]
        if eid == BUS_REQUEST:
            return 6
        if eid in (BUS_RESPONSE, REMOTE_EXCEPTION, FILTER_CONFIG):
            if len(b) < 2:
                return None
            return 2 + b[1] * (8 if eid == FILTER_CONFIG else 1)
        if eid in (CAN_MESSAGE, PERIODIC_START):
            return 23
        if eid in (TRANSMIT_SUCCESS, TRANSMIT_FAIL, CONNECTION_CLOSED):
            return 1
        if eid == PERIODIC_STOP:
            return 5
        if eid == LEASE_REQUEST:
            return None if len(b) < 6 else 6 + b[5]
        if eid == LEASE_RESPONSE:
            return _two_texts_size(b, 6)
        if eid == RESUME_REQUEST:
            return None if len(b) < 2 else 10 + b[1]
        if eid == RESUME_RESPONSE:
            return _two_texts_size(b, 26)
        if eid in (CAN_FD_MESSAGE, PERIODIC_FD_START):
            if len(b) < 14:
                return None
            if b[13] not in FD_LENGTHS:
                raise ProtocolError("event %d: length %d is not a CAN FD length" % (eid, b[13]))
            return 15 + b[13]
        raise ProtocolError("unknown event id %d (0x%02x)" % (eid, eid))

    def next(self):
        """(event_id, value) for the next complete event, or None if more bytes are needed."""
        if not self._buf:
            return None
        size = self._size()
        if size is None or len(self._buf) < size:
            return None
        raw = bytes(self._buf[:size])
        del self._buf[:size]
        eid = raw[0]
        if eid in (BUS_RESPONSE, REMOTE_EXCEPTION):
            return eid, raw[2:].decode("utf-8", "replace")
        if eid == CAN_MESSAGE:
            return eid, _CAN_MESSAGE.unpack(raw[1:])
        if eid == CAN_FD_MESSAGE:
            timestamp, arbitration_id, length, flags = _CAN_FD_HEADER.unpack(raw[1:15])
            return eid, (timestamp, arbitration_id, length, flags, raw[15:])
        if eid == LEASE_RESPONSE:
            granted, remaining_ms, n = struct.unpack(">BIB", raw[1:7])
            token = raw[7:7 + n].decode("ascii", "replace")
            text = raw[8 + n:].decode("utf-8", "replace")
            return eid, (bool(granted), remaining_ms / 1000.0, token, text)
        if eid == RESUME_RESPONSE:
            status, grace_ms, away_ms, lost, from_client, n = struct.unpack(">BIIQQB", raw[1:27])
            token = raw[27:27 + n].decode("ascii", "replace")
            text = raw[28 + n:].decode("utf-8", "replace")
            return eid, (status, grace_ms / 1000.0, away_ms / 1000.0, lost, from_client, token, text)
        return eid, raw[1:]


# The server's side (server.py): what a client sends, and the server's replies.

def parse_bus_request(payload):
    """(version, bitrate) of a BusRequest's payload."""
    return struct.unpack(">Bi", payload)


def parse_filter_config(payload):
    """python-can filter dicts from a FilterConfig's payload (count, then id/mask pairs)."""
    filters = []
    for i in range(payload[0]):
        can_id, can_mask = struct.unpack_from(">II", payload, 1 + 8 * i)
        f = {"can_id": can_id & 0x1FFFFFFF, "can_mask": can_mask & 0x1FFFFFFF}
        if can_mask & 0x80000000:
            f["extended"] = bool(can_id & 0x80000000)
        filters.append(f)
    return filters


def message_from_event(eid, value, channel=None):
    """The can.Message of a decoded CanMessage or CanFdMessage."""
    import can
    if eid == CAN_MESSAGE:
        timestamp, arbitration_id, dlc, flags, data = value
        remote = bool(flags & FLAG_REMOTE)
        return can.Message(timestamp=timestamp, arbitration_id=arbitration_id,
                           is_extended_id=bool(flags & FLAG_EXTENDED), is_remote_frame=remote,
                           is_error_frame=bool(flags & FLAG_ERROR), dlc=dlc,
                           data=None if remote else data[:dlc], channel=channel, check=False)
    timestamp, arbitration_id, length, flags, data = value
    return can.Message(timestamp=timestamp, arbitration_id=arbitration_id,
                       is_extended_id=bool(flags & FLAG_EXTENDED),
                       is_error_frame=bool(flags & FLAG_ERROR), is_fd=True,
                       bitrate_switch=bool(flags & FLAG_BRS),
                       error_state_indicator=bool(flags & FLAG_ESI), dlc=length, data=data,
                       channel=channel, check=False)


def parse_periodic_start(eid, payload, channel=None):
    """(period s, duration s, can.Message) of a PeriodicMessageStart / PeriodicFdMessageStart."""
    import can
    if eid == PERIODIC_START:
        period_ms, duration_ms, arbitration_id, dlc, extended, data = _PERIODIC.unpack(payload)
        msg = can.Message(arbitration_id=arbitration_id, is_extended_id=bool(extended), dlc=dlc,
                          data=data[:dlc], channel=channel, check=False)
    else:
        period_ms, duration_ms, arbitration_id, length, flags = _PERIODIC_FD_HEADER.unpack(payload[:14])
        msg = can.Message(arbitration_id=arbitration_id, is_extended_id=bool(flags & FLAG_EXTENDED),
                          is_fd=True, bitrate_switch=bool(flags & FLAG_BRS),
                          error_state_indicator=bool(flags & FLAG_ESI), dlc=length,
                          data=payload[14:], channel=channel, check=False)
    if period_ms <= 0 or duration_ms < 0:
        raise ProtocolError("periodic job: period %d ms, duration %d ms" % (period_ms, duration_ms))
    return period_ms / 1000.0, duration_ms / 1000.0, msg


def bus_response(text):
    return _string(BUS_RESPONSE, text)


def resume_refused(text):
    """ResumeResponse status 0 (the python server keeps no sessions)."""
    data = text.encode("utf-8")[:255]
    return struct.pack(">BBIIQQB", RESUME_RESPONSE, RESUME_REFUSED, 0, 0, 0, 0, 0) + \
        bytes([len(data)]) + data


def remote_exception(text):
    return _string(REMOTE_EXCEPTION, text)
