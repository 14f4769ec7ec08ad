"""A remote CAN protocol v5/v6 server on top of python-can, for where canserver cannot run.

``python -m canserver_remote`` starts the installed ``canserver`` with the same arguments on Linux;
on Windows or macOS, for hardware only a vendor library drives (Vector XL, Kvaser CANlib,
PCAN-Basic), or with ``--python``, it serves the bus through python-can itself with this module:
the same protocol (versions 5 and 6, filters, periodic jobs, several clients, the same errors) as
canserver, built on the plugin's own codec (protocol.py), for small rigs. Its limits are
measured in the plugin's README.

Threads: one reads the bus and hands each frame to the sessions whose filters pass it; each
session has a reader (its client's events) and a writer (its bounded queue to the socket). A
session whose queue is full loses frames, counted and logged once a second, never the others.
"""
import logging
import queue
import socket
import socketserver
import struct
import threading
import time

import can

from . import protocol

log = logging.getLogger("canserver_remote.server")

QUEUE_FRAMES = 10000  # per client; a client that reads slower than the bus loses frames (counted)


def matches(msg, filters):
    """python-can's filter rule: any filter passes, none given passes everything."""
    if not filters:
        return True
    for f in filters:
        if "extended" in f and bool(f["extended"]) != msg.is_extended_id:
            continue
        if (msg.arbitration_id & f["can_mask"]) == (f["can_id"] & f["can_mask"]):
            return True
    return False


class Session:
    def __init__(self, server, sock, peer):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.version = 0
        self.filters = []
        self.queue = queue.Queue(QUEUE_FRAMES)
        self.drops = 0
        self.tasks = {}
        self.open = False

    # The bus reader's thread.
    def deliver(self, msg):
        if not self.open or not matches(msg, self.filters):
            return
        if msg.is_fd and self.version != protocol.PROTOCOL_VERSION_FD:
            self.drops += 1  # a version 5 client cannot be given CAN FD frames
            return
        try:
            self.queue.put_nowait(protocol.can_message(msg, fd=self.version == protocol.PROTOCOL_VERSION_FD))
        except queue.Full:
            self.drops += 1

    def _writer(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 256:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._send(b"".join(batch))
                    return
                batch.append(more)
            if not self._send(b"".join(batch)):
                return

    def _send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fail(self, text):
        """A RemoteException, then the session ends (as canserver's)."""
        self.queue.put(protocol.remote_exception(text))
        log.warning("session %s: %s", self.peer, text)

    def run(self):
        writer = threading.Thread(target=self._writer, daemon=True)
        writer.start()
        decoder = protocol.Decoder()
        try:
            self._serve(decoder)
        finally:
            self.open = False
            for task in self.tasks.values():
                task.stop()
            self.tasks.clear()
            self.queue.put(None)
            writer.join(5)
            self.server.remove(self)
            log.info("session %s closed; %d frames dropped", self.peer, self.drops)

    def _serve(self, decoder):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            decoder.feed(data)
            while True:
                try:
                    event = decoder.next()
                except protocol.ProtocolError as e:
                    self._fail("protocol error: %s" % e)
                    return
                if event is None:
                    break
                if not self._handle(*event):
                    return

    def _handle(self, eid, value):
        if eid == protocol.CONNECTION_CLOSED:
            return False
        if self.version == 0:
            if eid != protocol.BUS_REQUEST:
                self._fail("handshake error: expected BusRequest, got event %d" % eid)
                return False
            version, bitrate = protocol.parse_bus_request(value)
            if version not in (protocol.PROTOCOL_VERSION, protocol.PROTOCOL_VERSION_FD):
                self._fail("protocol version mismatch: client speaks version %d, server speaks "
                           "versions 5 and 6 (CAN FD)" % version)
                return False
            if bitrate and self.server.bitrate and bitrate != self.server.bitrate:
                self._fail("bit rate mismatch: the client asked for %d bit/s, but %s runs at %d "
                           "bit/s" % (bitrate, self.server.describe(), self.server.bitrate))
                return False
            self.version = version
            return True
        if not self.open:
            if eid != protocol.FILTER_CONFIG:
                self._fail("handshake error: expected FilterConfig after BusRequest, got event %d" % eid)
                return False
            self.filters = protocol.parse_filter_config(value)
            self.queue.put(protocol.bus_response(self.server.channel_info()))
            self.open = True
            log.info("session %s opened, version %d, %d filters", self.peer, self.version,
                     len(self.filters))
            return True
        fd = self.version == protocol.PROTOCOL_VERSION_FD
        if eid in (protocol.CAN_MESSAGE, protocol.CAN_FD_MESSAGE):
            if eid == protocol.CAN_FD_MESSAGE and not fd:
                self._fail("protocol error: CanFdMessage is a CAN FD event of protocol version 6; "
                           "this session opened with version 5")
                return False
            msg = protocol.message_from_event(eid, value, self.server.channel)
            msg.timestamp = time.time()
            try:
                self.server.bus.send(msg)
            except can.CanError as e:
                log.warning("session %s: the bus refused a frame: %s", self.peer, e)
                self.queue.put(bytes([protocol.TRANSMIT_FAIL]))
                return True
            self.server.fan_out(msg, self)
            return True
        if eid in (protocol.PERIODIC_START, protocol.PERIODIC_FD_START):
            if eid == protocol.PERIODIC_FD_START and not fd:
                self._fail("protocol error: PeriodicFdMessageStart is a CAN FD event of protocol "
                           "version 6; this session opened with version 5")
                return False
            period, duration, msg = protocol.parse_periodic_start(eid, value, self.server.channel)
            old = self.tasks.pop(msg.arbitration_id, None)
            if old is not None:
                old.stop()
            self.tasks[msg.arbitration_id] = self.server.bus.send_periodic(
                msg, period, duration if duration > 0 else None)
            return True
        if eid == protocol.PERIODIC_STOP:
            (arbitration_id,) = struct.unpack(">I", value)
            task = self.tasks.pop(arbitration_id, None)
            if task is not None:
                task.stop()
            return True
        if eid == protocol.FILTER_CONFIG:
            self.filters = protocol.parse_filter_config(value)
            return True
        if eid == protocol.RESUME_REQUEST:  # canserver's; the session goes on, not resumable
            self.queue.put(protocol.resume_refused(
                "the python server keeps no session after its connection breaks"))
            return True
        self._fail("unexpected event %d from client" % eid)
        return False


class Server(socketserver.ThreadingTCPServer):
    """Serves `bus` (an open python-can bus) to remote CAN protocol clients on (host, port)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, bus, host="0.0.0.0", port=protocol.DEFAULT_PORT, channel="", bitrate=0):
        self.bus = bus
        self.channel = str(channel)
        self.bitrate = int(bitrate or 0)
        self._sessions = set()
        self._lock = threading.Lock()
        self._running = True

        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                session = Session(server, self.request, "%s:%d" % self.client_address[:2])
                with server._lock:
                    server._sessions.add(session)
                session.run()

        super().__init__((host, port), Handler)
        self._reader = threading.Thread(target=self._read_bus, name="bus-reader", daemon=True)
        self._reader.start()

    def describe(self):
        return "python-can %s channel '%s'" % (self.bus.__class__.__name__, self.channel)

    def channel_info(self):
        rate = ", %d bit/s" % self.bitrate if self.bitrate else ""
        return "%s%s (canserver_remote python server)" % (self.describe(), rate)

    def remove(self, session):
        with self._lock:
            self._sessions.discard(session)

    def fan_out(self, msg, sender):
        """A client's frame is bus traffic: every other client whose filters pass it gets it."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            if s is not sender:
                s.deliver(msg)

    def _read_bus(self):
        while self._running:
            try:
                msg = self.bus.recv(0.1)
            except can.CanError as e:
                log.error("reading the bus: %s", e)
                time.sleep(0.1)
                continue
            if msg is not None:
                self.fan_out(msg, None)

    def server_close(self):
        self._running = False
        self._reader.join(1)
        super().server_close()
