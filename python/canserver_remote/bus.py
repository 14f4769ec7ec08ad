"""The python-can Bus for canserver: ``can.Bus('host[:port]', interface='remote')``."""
import collections
import math
import logging
import os
import re
import select
import socket
import ssl
import threading
import time

import can

from . import protocol

# A server that vanished without a word (cable pulled, host off) is noticed within about this
# many seconds while the connection is idle: keepalive probes, as canserver's own --keepalive
# does for its clients. No TCP_USER_TIMEOUT: canserver holds a sender back by not reading it
# while the bus is busy, as long as that takes, and that must not end the connection.
KEEPALIVE_SECONDS = 10


def _set_keepalive(sock, seconds):
    """Keepalive probes from seconds/2 of silence, 3 of them seconds/6 apart (Linux; elsewhere
    as much as the platform offers)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", max(1, seconds // 2)),
        ("TCP_KEEPINTVL", max(1, seconds // 6)),
        ("TCP_KEEPCNT", 3),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)

log = logging.getLogger("can.remote")


def _tls_context(ca, cert, key):
    """The SSLContext for tls_ca/tls_cert/tls_key, or None for plain text."""
    if not ca and not cert:
        return None
    try:
        if ca is True or (isinstance(ca, str) and ca.lower() in ("true", "1", "yes", "system")):
            context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as e:
        raise can.CanInitializationError("TLS settings (tls_ca=%r, tls_cert=%r, tls_key=%r): %s"
                                         % (ca, cert, key, e)) from e
    return context


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


# Linux's CAN error frame (linux/can/error.h): the class is in the id, the details in the data.
_CAN_ERR_CRTL = 0x004
_CAN_ERR_BUSOFF = 0x040
_CAN_ERR_RESTARTED = 0x100
_CAN_ERR_CRTL_PASSIVE = 0x10 | 0x20  # data[1]: rx or tx error-passive
_CAN_ERR_CRTL_ACTIVE = 0x40  # data[1]: back to error-active


def _state_from_info(info):
    """The state canserver's BusResponse names (it names one only when it is not error-active)."""
    if "bus-off" in info:
        return can.BusState.ERROR
    if "error-passive" in info:
        return can.BusState.PASSIVE
    return can.BusState.ACTIVE


def _state_from_error_frame(msg, state):
    cls = msg.arbitration_id
    if cls & _CAN_ERR_BUSOFF:
        return can.BusState.ERROR
    if cls & _CAN_ERR_RESTARTED:
        return can.BusState.ACTIVE
    if cls & _CAN_ERR_CRTL and len(msg.data) > 1:
        if msg.data[1] & _CAN_ERR_CRTL_PASSIVE:
            return can.BusState.PASSIVE
        if msg.data[1] & _CAN_ERR_CRTL_ACTIVE:
            return can.BusState.ACTIVE
    return state


class _VersionRefused(Exception):
    """The server does not speak the protocol version asked for."""


class _ResumeUnsupported(Exception):
    """The server ended the session when asked to keep it (not canserver): connect again."""


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
    :param reconnect: seconds to keep trying to reconnect when the connection to the server
        breaks (a network blip, ``systemctl restart canserver``); 0 (the default) raises
        ``CanOperationError`` at once, as python-can's own buses do when their device goes away,
        so a script notices. With it, ``recv()`` and ``send()`` wait while the plugin reconnects,
        open a new session with the same bit rate, filters and periodic tasks, and go on; what the
        bus carried meanwhile was not received: each gap is logged as a warning and counted
        (``reconnects``, ``gap_seconds``). A ``send()`` during the gap waits for the connection,
        then sends; if it does not come back within ``reconnect`` seconds, the error is raised.
    :param tls_ca: connect with TLS, verifying the server's certificate against this CA file
        (PEM; ``True``: the system's CAs). A bus that asked for TLS never falls back to plain
        text. Like every parameter, these may come from ``~/.canrc``/``can.ini`` or
        ``CAN_CONFIG``.
    :param tls_cert: this client's certificate (PEM), for a server that asks for one
        (``canserver --tls-ca``); its name decides the client's role there.
    :param tls_key: the private key of ``tls_cert`` (default: in the same file).
    :param lease_token: join the channel's lease with this token after connecting, so this bus
        may transmit while another client holds the lease (``canremote lease … -- CMD`` gives
        its command the token in ``CANSERVER_LEASE``, the default). A token that no longer
        matches is logged and otherwise ignored.
    :param receive_own_messages: messages this bus sends are also returned by ``recv()``
        (``is_rx=False``), as SocketCAN's option of that name does. The server never sends a
        client's frames back, so the plugin hands each one back itself once it was written to the
        server: in the order sent, not at its bus time.

    ``fileno()`` is readable while a message is waiting, buffered or not, so ``can.Notifier``
    with an asyncio loop (one ``recv(0)`` per readable event) gets every one. ``state`` is the
    controller's state as the server last reported it (at connect, then from error frames when
    canserver runs with ``--error-frames``).
    """

    def __init__(self, channel, can_filters=None, bitrate=0, connect_timeout=10.0, fd=False,
                 receive_own_messages=False, reconnect=0.0, tls_ca=None, tls_cert=None,
                 tls_key=None, lease_token=None, **kwargs):
        self._host, self._port = _parse_channel(channel)
        self._tls = _tls_context(tls_ca, tls_cert, tls_key)
        self._bitrate = int(bitrate)
        self._connect_timeout = float(connect_timeout)
        self._reconnect = float(reconnect)
        self._reconnects = 0
        self._resumes = 0
        self._frames_lost = 0
        self._gap_seconds = 0.0
        # With reconnect: the server keeps the session across a break (canserver --resume-grace);
        # its token, and the frames of its stream received since the server gave it.
        self._resume_token = ""
        self._frames_received = 0
        self._resume_supported = True
        self._server_filters = can_filters
        self._tasks = set()  # RemoteCyclicTasks running on the server, restarted on reconnect
        # A Notifier's thread may meet the break in recv() while the application's meets it in
        # send(): one of them reconnects, the other finds the session already new.
        self._reconnect_lock = threading.Lock()
        self._generation = 0
        self._transmit_failures = 0
        self._receive_own = bool(receive_own_messages)
        self._own = collections.deque()  # sent messages handed back by recv()
        self._state = can.BusState.ACTIVE
        # Lease answers arrive among the frames: whichever thread reads one hands it over here.
        self._read_lock = threading.RLock()  # RLock: a reconnect inside recv() rejoins the lease
        self._lease_replies = collections.deque()
        self._lease_cond = threading.Condition()
        self._kept = collections.deque()  # messages read while waiting for a lease answer
        self._lease_token = lease_token if lease_token is not None else os.environ.get(
            "CANSERVER_LEASE", "")
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
        self._state = _state_from_info(value)
        # fileno() is an epoll set of the socket and a pipe that is kept readable while a message
        # is buffered here: a Notifier on an asyncio loop calls recv(0) once per readable event,
        # and buffered messages would otherwise wait for the next bytes from the server.
        self._poller = select.epoll()
        self._ready_r, self._ready_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller.register(self._sock.fileno(), select.EPOLLIN)
        self._poller.register(self._ready_r, select.EPOLLIN)
        self._ready = False
        self._open = False  # BusABC.__init__ applies (no) filters; the handshake already sent ours
        super().__init__(channel=channel, can_filters=None, **kwargs)
        if hasattr(can, "CanProtocol"):  # python-can >= 4.3
            self._can_protocol = can.CanProtocol.CAN_FD if self._fd else can.CanProtocol.CAN_20
        self._open = True
        if self._lease_token:
            self._join_lease()

    def _join_lease(self):
        try:
            self._lease_exchange(protocol.lease_request(0, self._lease_token))
        except can.CanOperationError as e:
            log.warning("canserver: lease token not joined: %s", e)

    def lease(self, seconds=30.0, renew=True):
        """The channel's exclusive transmit lease, as a context manager::

            with bus.lease(seconds=30):
                flash(bus)

        While it is held, only this bus (and clients that joined it with its token) may
        transmit on the channel: other clients' frames, periodic jobs and ISO-TP sends are
        refused naming this client, and their running periodic jobs pause until it ends. It is
        renewed every ``seconds / 2`` while the block runs (``renew=False``: not), released when
        the block ends, and ends with this bus's connection. Raises ``CanOperationError`` naming
        the holder when another client holds the channel. ``token`` of the returned object lets
        other processes join (``lease_token=``).
        """
        return _Lease(self, float(seconds), renew)

    def _lease_exchange(self, request, timeout=5.0):
        """Sends a LeaseRequest and waits for its answer: (remaining seconds, token, text).
        Frames read meanwhile are kept for recv()."""
        with self._lease_cond:
            self._lease_replies.clear()
        self._sock.sendall(request)
        deadline = time.monotonic() + timeout
        while True:
            with self._lease_cond:
                if self._lease_replies:
                    granted, remaining, token, text = self._lease_replies.popleft()
                    if not granted:
                        raise can.CanOperationError(text)
                    return remaining, token, text
            if time.monotonic() >= deadline:
                raise can.CanOperationError(
                    "no answer to the lease request within %g s (is the server canserver?)" % timeout)
            if self._read_lock.acquire(blocking=False):
                try:
                    event = self._read_event(min(deadline, time.monotonic() + 0.05))
                finally:
                    self._read_lock.release()
                if event is not None:
                    self._keep_event(event)
            else:  # another thread is in recv(): it hands the answer over
                with self._lease_cond:
                    if not self._lease_replies:
                        self._lease_cond.wait(0.05)

    def _hand_over_lease_reply(self, value):
        """A LeaseResponse, read by whichever thread: to the one waiting in _lease_exchange."""
        with self._lease_cond:
            self._lease_replies.append(value)
            self._lease_cond.notify_all()

    def _keep_event(self, event):
        """An event read by _lease_exchange: the answer is handed over, messages kept."""
        eid, value = event
        if eid == protocol.LEASE_RESPONSE:
            self._hand_over_lease_reply(value)
            return
        msg = self._message(eid, value)
        if msg is not None:
            self._kept.append(msg)
            self._set_ready()

    def _connect(self, bitrate, can_filters, connect_timeout, version):
        """Connects and completes the handshake with `version`; returns the BusResponse text."""
        self._handshaking = True
        try:
            try:
                return self._handshake(bitrate, can_filters, connect_timeout, version)
            except _ResumeUnsupported:
                return self._handshake(bitrate, can_filters, connect_timeout, version)
        finally:
            self._handshaking = False

    def _dial(self, connect_timeout):
        """A connection to the server (TLS if asked), with a fresh decoder."""
        self._decoder = protocol.Decoder()
        try:
            sock = socket.create_connection((self._host, self._port), timeout=connect_timeout)
        except OSError as e:
            raise can.CanInitializationError(
                "cannot connect to canserver at %s:%d: %s" % (self._host, self._port, e)
            ) from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set_keepalive(sock, KEEPALIVE_SECONDS)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except (ssl.SSLError, ssl.CertificateError, OSError) as e:
                sock.close()
                raise can.CanInitializationError(
                    "TLS handshake with canserver at %s:%d failed: %s" % (self._host, self._port, e)
                ) from e
        return sock

    def _handshake(self, bitrate, can_filters, connect_timeout, version):
        self._fd = version == protocol.PROTOCOL_VERSION_FD
        self._sock = self._dial(connect_timeout)
        try:
            self._sock.sendall(protocol.bus_request(bitrate, version) +
                               protocol.filter_config(can_filters))
        except OSError as e:  # ssl.SSLError included
            # TLS 1.3: the server may refuse our certificate and close before our first write
            # (it races the read below); its alert, if it came, says why.
            reason = e
            if self._tls is not None:
                try:
                    self._sock.settimeout(1.0)
                    self._sock.recv(1)
                except OSError as alert:
                    reason = alert
            self._sock.close()
            if self._tls is not None:
                raise can.CanInitializationError(
                    "canserver at %s:%d refused this client's TLS certificate (it ended the "
                    "connection after the handshake): %s" % (self._host, self._port, reason)) from e
            raise can.CanInitializationError("handshake error: %s" % reason) from e
        try:
            event = self._read_event(time.monotonic() + connect_timeout)
        except can.CanOperationError as e:
            self._sock.close()
            # TLS 1.3: the server checks our certificate after our side of the handshake is done;
            # its verdict arrives as an alert on the first read.
            if self._tls is not None and "ALERT" in str(e):
                raise can.CanInitializationError(
                    "canserver at %s:%d refused this client's TLS certificate: %s" % (
                        self._host, self._port, e)) from e
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
        if self._reconnect > 0 and self._resume_supported:
            self._ask_to_keep(connect_timeout)
        self._sock.settimeout(None)
        return value

    def _ask_to_keep(self, timeout):
        """With ``reconnect``: asks the server to keep this session across a break (a token).
        Frames that arrive before the answer are kept for recv()."""
        self._resume_token = ""
        self._sock.sendall(protocol.resume_request())
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._read_event(deadline)
            except can.CanOperationError:
                event = None
            if event is None:
                break
            eid, value = event
            if eid == protocol.RESUME_RESPONSE:
                status, _, _, _, _, token, text = value
                if status == protocol.RESUME_RESUMABLE:
                    self._resume_token = token
                    self._frames_received = 0  # the server counts its stream from here
                else:
                    log.info("canserver: the session will not be resumed after a break: %s", text)
                return
            if eid == protocol.REMOTE_EXCEPTION:
                break
            msg = self._message(eid, value)
            if msg is not None:
                self._kept.append(msg)
                if hasattr(self, "_ready"):
                    self._set_ready()
        # A server that does not know the event (the original) ends the session: a new one,
        # without asking again.
        log.info("canserver at %s:%d keeps no session across a break (not canserver)",
                 self._host, self._port)
        self._resume_supported = False
        self._sock.close()
        raise _ResumeUnsupported()

    @property
    def fd(self):
        """True when the session speaks protocol version 6 and carries CAN FD frames."""
        return self._fd

    @property
    def reconnects(self):
        """Times the connection broke and the plugin opened a new session (``reconnect``)."""
        return self._reconnects

    @property
    def resumes(self):
        """Of ``reconnects``, the times the server still had the session: the frames of the
        break arrived after all, except ``frames_lost``."""
        return self._resumes

    @property
    def frames_lost(self):
        """Frames the server reported lost across resumed breaks (its ring overflowed, or they
        were in transit beyond what it keeps to send again)."""
        return self._frames_lost

    @property
    def gap_seconds(self):
        """Seconds without a connection over all reconnects: what the bus carried then is missed."""
        return self._gap_seconds

    def _reconnect_after(self, error, generation):
        """The connection of `generation` broke with `error`: with ``reconnect``, opens a new
        session with the same settings and returns; otherwise, or if that fails in time, raises
        the error."""
        if self._reconnect <= 0 or not getattr(self, "_open", False) or self._handshaking:
            raise can.CanOperationError(error)  # (a handshake's own failure: its caller retries)
        with self._reconnect_lock:
            if generation != self._generation:
                return  # another thread already opened a new session
            self._reconnect_locked(error)
            self._generation += 1

    def _reconnect_locked(self, error):
        lost = time.monotonic()
        deadline = lost + self._reconnect
        version = protocol.PROTOCOL_VERSION_FD if self._fd else protocol.PROTOCOL_VERSION
        old = self._sock
        try:
            self._poller.unregister(old.fileno())
        except (OSError, ValueError):
            pass
        old.close()
        last = error
        resumed = None
        while True:
            timeout = max(0.5, min(self._connect_timeout, deadline - time.monotonic()))
            try:
                if self._resume_token:
                    resumed = self._try_resume(timeout)
                if resumed is None:
                    self._connect(self._bitrate, self._server_filters, timeout, version)
                break
            except (can.CanInitializationError, _VersionRefused) as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise can.CanOperationError(
                    "%s; no new session within reconnect=%g s: %s" % (error, self._reconnect, last))
            time.sleep(0.2)
        self._poller.register(self._sock.fileno(), select.EPOLLIN)
        gap = time.monotonic() - lost
        self._reconnects += 1
        self._gap_seconds += gap
        if resumed is not None:
            _, _, away, frames_lost, _, _, text = resumed
            self._resumes += 1
            self._frames_lost += frames_lost
            log.warning("canserver at %s:%d: connection lost (%s); resumed after %.1f s: %s",
                        self._host, self._port, error, gap, text)
            return
        for task in list(self._tasks):
            task.start()
        if self._lease_token:
            self._join_lease()
        log.warning("canserver at %s:%d: connection lost (%s); a new session after %.1f s: what the "
                    "bus carried meanwhile was not received (gap %d)",
                    self._host, self._port, error, gap, self._reconnects)

    def _try_resume(self, timeout):
        """Takes the session back on a new connection: the ResumeResponse's fields, or None if
        the server no longer has it (a new session is needed)."""
        sock = self._dial(timeout)
        decoder = self._decoder
        try:
            sock.sendall(protocol.resume_request(self._resume_token, self._frames_received))
            end = time.monotonic() + timeout
            while not decoder.has_event():
                sock.settimeout(max(0.01, end - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    raise OSError("connection closed")
                decoder.feed(data)
            eid, value = decoder.next()
        except (OSError, protocol.ProtocolError) as e:
            sock.close()
            raise can.CanInitializationError("resume: %s" % e) from e
        if eid != protocol.RESUME_RESPONSE or value[0] != protocol.RESUME_RESUMED:
            sock.close()
            self._resume_token = ""
            log.info("canserver: %s", value[-1] if eid == protocol.RESUME_RESPONSE else value)
            return None
        sock.settimeout(None)
        self._sock = sock
        return value

    def _check_connection(self):
        """Before a send with ``reconnect``: a connection the server already closed is noticed
        now, not after the frame went into it and was lost."""
        while True:
            generation = self._generation
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return
            try:
                data = self._sock.recv(65536)
            except OSError as e:
                self._reconnect_after("connection closed unexpectedly: %s" % e, generation)
                return
            if not data:
                self._reconnect_after("connection closed unexpectedly", generation)
                return
            self._decoder.feed(data)

    @property
    def transmit_failures(self):
        """TransmitFail events received: frames of ours the bus refused."""
        return self._transmit_failures

    @property
    def state(self):
        """The controller's state as the server last reported it (see the class docstring)."""
        return self._state

    @state.setter
    def state(self, new_state):
        raise NotImplementedError(
            "canserver shares the bus among its clients: one client cannot change the controller's "
            "mode (state %s asked); the rig's owner sets it on the server" % new_state)

    def fileno(self):
        return self._poller.fileno()

    def _set_ready(self):
        """Keeps the ready pipe readable exactly while a message waits here."""
        waiting = bool(self._own) or bool(self._kept)
        if not waiting:
            try:
                waiting = self._decoder.has_event()
            except protocol.ProtocolError:
                waiting = True  # the next recv() raises it
        if waiting == self._ready:
            return
        if waiting:
            os.write(self._ready_w, b"x")
        else:
            try:
                os.read(self._ready_r, 64)
            except BlockingIOError:
                pass
        self._ready = waiting

    def _read_event(self, deadline):
        while True:
            try:
                event = self._decoder.next()
            except protocol.ProtocolError as e:
                raise can.CanOperationError("protocol error from server: %s" % e) from e
            if event is not None:
                return event
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            generation = self._generation
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if not readable:
                return None
            try:
                data = self._sock.recv(65536)
            except OSError as e:
                self._reconnect_after("connection closed unexpectedly: %s" % e, generation)
                continue
            if not data:
                self._reconnect_after("connection closed unexpectedly", generation)
                continue
            self._decoder.feed(data)
            # TLS: a record read in part leaves the rest decrypted in the SSL object, where
            # select() does not see it.
            pending = getattr(self._sock, "pending", None)
            while pending is not None and pending() > 0:
                self._decoder.feed(self._sock.recv(pending()))

    def _recv_internal(self, timeout):
        try:
            return self._recv_one(timeout), True
        finally:
            self._set_ready()

    def _recv_one(self, timeout):
        if self._own:
            return self._own.popleft()
        if self._kept:
            return self._kept.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._read_lock:
                event = self._read_event(deadline)
            if event is None:
                return None
            eid, value = event
            if eid == protocol.LEASE_RESPONSE:
                self._hand_over_lease_reply(value)
                continue
            msg = self._message(eid, value)
            if msg is not None:
                return msg

    def _message(self, eid, value):
        """The can.Message of a CanMessage/CanFdMessage event; handles the other events (None)."""
        if eid in (protocol.CAN_MESSAGE, protocol.CAN_FD_MESSAGE):
            self._frames_received += 1  # the stream's position, for resuming
            msg = protocol.message_from_event(eid, value, getattr(self, "_msg_channel", None))
            if msg.is_error_frame and not msg.is_fd:
                self._state = _state_from_error_frame(msg, self._state)
            return msg
        if eid == protocol.TRANSMIT_FAIL:
            self._transmit_failures += 1
            log.warning("canserver: the bus refused a frame we sent")
            return None
        if eid == protocol.REMOTE_EXCEPTION:
            if value == "server shutting down" and self._reconnect > 0:
                self._reconnect_after(value, self._generation)  # a restart, most likely
                return None
            raise can.CanOperationError(value)
        if eid == protocol.CONNECTION_CLOSED:
            self._reconnect_after("connection closed unexpectedly", self._generation)
        return None

    def send(self, msg, timeout=None):
        try:
            data = protocol.can_message(msg, self._fd)
        except ValueError as e:
            raise can.CanOperationError(str(e)) from e
        if self._reconnect > 0:
            self._check_connection()
        generation = self._generation
        try:
            self._sock.sendall(data)
        except OSError as e:
            self._reconnect_after("connection closed unexpectedly: %s" % e, generation)
            self._sock.sendall(data)
        if self._receive_own:
            own = msg.__copy__()
            own.is_rx = False
            own.channel = self._msg_channel
            if not own.timestamp:
                own.timestamp = time.time()
            self._own.append(own)
            self._set_ready()

    def _send_periodic_internal(self, msgs, period, duration=None, autostart=True,
                                modifier_callback=None):
        """One message, no modifier_callback: timed by the server (the kernel's broadcast manager
        on SocketCAN), so it keeps its period whatever this process does. Several messages in
        turn, or a modifier_callback (Python code to run before each frame), cannot run on the
        server: python-can's own thread in this process sends them with send()."""
        if isinstance(msgs, can.Message):
            msgs = [msgs]
        if len(msgs) != 1 or modifier_callback is not None:
            why = "a modifier_callback" if modifier_callback is not None else "%d messages" % len(msgs)
            log.info("send_periodic with %s: timed by a thread in this process, not by canserver", why)
            if modifier_callback is not None:
                return super()._send_periodic_internal(msgs, period, duration, autostart,
                                                       modifier_callback)
            if not autostart:  # python-can 4.1's thread-based task always starts
                return super()._send_periodic_internal(msgs, period, duration, autostart)
            return super()._send_periodic_internal(msgs, period, duration)
        return RemoteCyclicTask(self, msgs[0], period, duration, autostart)

    def _apply_filters(self, filters):
        # The server filters; python-can's own check in recv() would only repeat its work.
        if getattr(self, "_open", False):  # (BusABC.__init__ applies None: ours went earlier)
            self._server_filters = filters
            self._sock.sendall(protocol.filter_config(filters))
        self._filters = None

    def shutdown(self):
        super().shutdown()
        self._poller.close()
        os.close(self._ready_r)
        os.close(self._ready_w)
        # Half-close, then read to the server's close: the server writes what it still holds of
        # ours to the bus first. Closing with unread data would reset the connection, and the
        # kernel would throw away whatever of ours it had not sent yet. Bounded to 5 s.
        # ConnectionClosed first: the server ends the session at once rather than keeping it
        # for a resume (--resume-grace), after writing what it holds of ours to the bus.
        try:
            self._sock.sendall(bytes([protocol.CONNECTION_CLOSED]))
            self._sock.shutdown(socket.SHUT_WR)
            self._sock.settimeout(5.0)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self._sock.recv(65536):
                pass
        except OSError:
            pass
        self._sock.close()


class _Lease:
    """RemoteBus.lease(): takes the lease on enter, renews it from a thread, releases it on
    exit."""

    def __init__(self, bus, seconds, renew):
        if seconds <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self._bus = bus
        self.seconds = seconds
        self._renew = renew
        self._stop = threading.Event()
        self._thread = None
        self.token = None
        self.holder = None
        self.remaining = 0.0
        self.lost = None  # why a renewal failed, if one did

    def _take(self):
        self.remaining, self.token, self.holder = self._bus._lease_exchange(
            protocol.lease_request(max(1, int(math.ceil(self.seconds)))))

    def __enter__(self):
        self._take()
        if self._renew:
            self._thread = threading.Thread(target=self._renewing, daemon=True,
                                            name="canserver-lease")
            self._thread.start()
        return self

    def _renewing(self):
        while not self._stop.wait(max(0.5, self.seconds / 2)):
            try:
                self._take()
            except (can.CanOperationError, OSError) as e:
                self.lost = str(e)
                log.warning("canserver: the lease could not be renewed: %s", e)
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._bus._lease_exchange(protocol.lease_request(0))
        except (can.CanOperationError, OSError) as e:
            log.warning("canserver: releasing the lease: %s", e)
        return False


class RemoteCyclicTask(can.broadcastmanager.LimitedDurationCyclicSendTaskABC,
                       can.broadcastmanager.ModifiableCyclicTaskABC,
                       can.broadcastmanager.RestartableCyclicTaskABC):
    """A periodic transmission timed by the server (the kernel's broadcast manager on SocketCAN)."""

    def __init__(self, bus, message, period, duration=None, autostart=True):
        super().__init__(message, period, duration)
        self._bus = bus
        if autostart:
            self.start()

    def start(self):
        try:
            data = protocol.periodic_start(self.messages[0], self.period, self.duration, self._bus.fd)
        except ValueError as e:
            raise can.CanOperationError(str(e)) from e
        self._bus._sock.sendall(data)
        self._bus._tasks.add(self)

    def stop(self):
        self._bus._tasks.discard(self)
        self._bus._sock.sendall(protocol.periodic_stop(self.messages[0].arbitration_id))

    def modify_data(self, messages):
        if isinstance(messages, can.Message):
            messages = [messages]
        self._check_modified_messages(messages)
        self.messages = messages
        self.start()
