"""python-can (Debian's python3-can) through canserver, with the canserver_remote plugin.

Run by ctest (label `integration`) with CANSERVER_BIN pointing at the build's canserver and the
plugin installed on PYTHONPATH; see tests/CMakeLists.txt.
"""
import asyncio
import inspect
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import can


def wait_for_logger(path):
    """can.logger opens its bus first and then creates the file: once the file is there, the
    logger is connected. Bounded, generous for a loaded machine."""
    deadline = time.time() + 20
    while time.time() < deadline and not os.path.exists(path):
        time.sleep(0.05)
    time.sleep(0.3)  # its subscription reaches the CAN thread


def wait_for_log(server, text, timeout=10):
    """The server's log once it contains `text` (or when `timeout` seconds have passed)."""
    deadline = time.time() + timeout
    while True:
        with open(server.log.name) as f:
            log = f.read()
        if text in log or time.time() > deadline:
            return log
        time.sleep(0.05)


def bus_kwargs(**kwargs):
    """Interface arguments on python-can's command line: python-can >= 4.5 (can/cli.py) takes
    them after --bus-kwargs, 4.1 as --key=value."""
    try:
        import can.cli  # noqa: F401
    except ImportError:
        return ["--%s=%s" % kv for kv in kwargs.items()]
    return ["--bus-kwargs"] + ["%s=%s" % kv for kv in kwargs.items()]


def send_periodic_takes(name):
    return name in inspect.signature(can.BusABC.send_periodic).parameters


def canserver_version():
    out = subprocess.run([os.environ["CANSERVER_BIN"], "--version"], capture_output=True, text=True)
    return out.stdout.split()[1]


class Server:
    """canserver on the virtual bus, on a free loopback port."""

    def __init__(self, *flags):
        self.log = tempfile.NamedTemporaryFile(prefix="canserver-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [os.environ["CANSERVER_BIN"], "--interface", "virtual", "--channel", "pytest",
             "--host", "127.0.0.1", "--port", "0", "--socketcand-port", "0", *flags],
            stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(self.log.name) as f:
                m = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                self.channel = "127.0.0.1:%d" % self.port
                return
            time.sleep(0.05)
        with open(self.log.name) as f:
            raise RuntimeError("canserver did not start: " + f.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self.log.close()
        return code


class PythonCanTest(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.buses = []

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.assertEqual(self.server.stop(), 0)

    def bus(self, **kwargs):
        b = can.Bus(self.server.channel, interface="remote", **kwargs)
        self.buses.append(b)
        time.sleep(0.05)  # let the server subscribe it before traffic starts
        return b

    def test_two_buses_exchange_frames_without_echo(self):
        a, b = self.bus(bitrate=250000), self.bus()
        self.assertEqual(b.recv(0.01), None)
        self.assertEqual(a.channel_info,
                         "virtual channel 'pytest', no bit timing (asked 250000 bit/s) "
                         "(canserver %s) on %s" % (canserver_version(), self.server.channel))
        a.send(can.Message(arbitration_id=0x123, data=[1, 2, 3], is_extended_id=False))
        b.send(can.Message(arbitration_id=0x1ABCDEF0, data=b"\xff" * 8, is_extended_id=True))
        got = b.recv(5)
        self.assertEqual((got.arbitration_id, bytes(got.data), got.is_extended_id), (0x123, b"\x01\x02\x03", False))
        self.assertGreater(got.timestamp, 1e9)
        got = a.recv(5)
        self.assertEqual((got.arbitration_id, got.dlc, got.is_extended_id), (0x1ABCDEF0, 8, True))
        self.assertIsNone(a.recv(0.2))
        self.assertIsNone(b.recv(0.2))

    def test_a_vanished_server_is_noticed_within_seconds(self):
        # Keepalive probes on the plugin's socket (as canserver --keepalive sets on the server's
        # side): a black-holed server is found dead in about 10 s, not never. No user timeout:
        # canserver may hold a sender back for as long as the bus is busy.
        b = self.bus()
        sock = b._sock
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 5)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), 3)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT), 0)

    def test_can_fd_round_trip_with_flags(self):
        a, b = self.bus(fd=True), self.bus(fd=True)
        classic_only = self.bus()
        self.assertTrue(a.fd)
        self.assertFalse(classic_only.fd)
        payload = bytes(range(64))
        a.send(can.Message(arbitration_id=0x123, data=payload, is_fd=True, bitrate_switch=True,
                           is_extended_id=False))
        a.send(can.Message(arbitration_id=0x1ABCDEF0, data=payload[:12], is_fd=True,
                           error_state_indicator=True, is_extended_id=True))
        a.send(can.Message(arbitration_id=0x7, data=[1, 2], is_extended_id=False))
        got = b.recv(5)
        self.assertEqual((got.arbitration_id, bytes(got.data), got.dlc), (0x123, payload, 64))
        self.assertTrue(got.is_fd and got.bitrate_switch and not got.error_state_indicator)
        got = b.recv(5)
        self.assertEqual((got.arbitration_id, got.dlc, got.is_extended_id), (0x1ABCDEF0, 12, True))
        self.assertTrue(got.is_fd and got.error_state_indicator and not got.bitrate_switch)
        got = b.recv(5)
        self.assertFalse(got.is_fd)
        # The version 5 session gets the classic frame only.
        got = classic_only.recv(5)
        self.assertEqual((got.arbitration_id, got.is_fd), (0x7, False))
        self.assertIsNone(classic_only.recv(0.2))
        with self.assertRaises(can.CanOperationError) as ctx:
            classic_only.send(can.Message(arbitration_id=1, data=[1], is_fd=True))
        self.assertIn("cannot carry CAN FD", str(ctx.exception))

    def test_can_fd_periodic(self):
        a, b = self.bus(fd=True), self.bus(fd=True)
        msg = can.Message(arbitration_id=0x321, data=bytes(16), is_fd=True, bitrate_switch=True,
                          is_extended_id=False)
        a.send_periodic(msg, 0.02, 0.2)
        frames = [m for m in iter(lambda: b.recv(0.5), None)]
        self.assertEqual(len(frames), 10)
        self.assertTrue(all(m.is_fd and m.bitrate_switch and m.dlc == 16 for m in frames))

    def test_fd_falls_back_to_version_5_on_a_server_without_it(self):
        import socket
        import struct
        import threading
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        versions = []

        def serve():  # the original server: a version other than 5 closes without a word
            for _ in range(2):
                conn, _ = listener.accept()
                request = conn.recv(6)
                versions.append(request[1])
                if request[1] == 5:
                    info = b"v5 only"
                    conn.sendall(bytes([2, len(info)]) + info)
                    time.sleep(0.5)
                conn.close()

        t = threading.Thread(target=serve)
        t.start()
        bus = can.Bus("127.0.0.1:%d" % listener.getsockname()[1], interface="remote", fd=True)
        self.assertFalse(bus.fd)
        self.assertIn("v5 only", bus.channel_info)
        bus.shutdown()
        t.join()
        listener.close()
        self.assertEqual(versions, [6, 5])

    def test_logger_writes_fd_frames_that_the_log_reader_reads_back(self):
        a = self.bus(fd=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "fd.log")
            logger = subprocess.Popen([sys.executable, "-m", "can.logger", "-i", "remote", "--fd",
                                       "-c", self.server.channel, "-f", path],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for_logger(path)
            sent = [can.Message(arbitration_id=0x400 + i, data=bytes([i] * 64), is_fd=True,
                                bitrate_switch=bool(i % 2), is_extended_id=False) for i in range(10)]
            for m in sent:
                a.send(m)
            time.sleep(1.0)
            logger.send_signal(signal.SIGINT)
            logger.communicate(timeout=10)
            read = list(can.LogReader(path))
            self.assertEqual(len(read), 10)
            for m, r in zip(sent, read):
                self.assertEqual((r.arbitration_id, bytes(r.data), r.is_fd, r.bitrate_switch),
                                 (m.arbitration_id, bytes(m.data), True, m.bitrate_switch))

    def test_remote_frames(self):
        a, b = self.bus(), self.bus()
        a.send(can.Message(arbitration_id=0x7FF, is_remote_frame=True, dlc=4, is_extended_id=False))
        got = b.recv(5)
        self.assertTrue(got.is_remote_frame)
        self.assertEqual(got.dlc, 4)

    def test_filters_are_applied_by_the_server(self):
        a = self.bus()
        b = self.bus(can_filters=[{"can_id": 0x11, "can_mask": 0xFF}])
        c = self.bus(can_filters=[{"can_id": 0x11, "can_mask": 0x7FF, "extended": True}])
        for arb, ext in ((0x11, False), (0x12, False), (0x111, False), (0x11, True)):
            a.send(can.Message(arbitration_id=arb, is_extended_id=ext))
        got = [(m.arbitration_id, m.is_extended_id) for m in iter(lambda: b.recv(0.3), None)]
        self.assertEqual(got, [(0x11, False), (0x111, False), (0x11, True)])
        got = [(m.arbitration_id, m.is_extended_id) for m in iter(lambda: c.recv(0.3), None)]
        self.assertEqual(got, [(0x11, True)])
        b.set_filters([{"can_id": 0x12, "can_mask": 0x7FF}])
        time.sleep(0.1)
        a.send(can.Message(arbitration_id=0x12, is_extended_id=False))
        self.assertEqual(b.recv(5).arbitration_id, 0x12)

    def test_periodic_runs_on_the_server(self):
        a, b = self.bus(), self.bus()
        task = a.send_periodic(can.Message(arbitration_id=0x200, data=[1], is_extended_id=False), 0.02, 0.2)
        frames = [m for m in iter(lambda: b.recv(0.5), None) if m.arbitration_id == 0x200]
        self.assertEqual(len(frames), 10)  # 200 ms at 20 ms
        task.modify_data(can.Message(arbitration_id=0x200, data=[2], is_extended_id=False))  # restarts
        frames = [m for m in iter(lambda: b.recv(0.5), None) if m.arbitration_id == 0x200]
        self.assertEqual(len(frames), 10)
        self.assertEqual(frames[-1].data[0], 2)
        forever = a.send_periodic(can.Message(arbitration_id=0x201, is_extended_id=False), 0.01)
        self.assertIsNotNone(b.recv(2))
        forever.stop()
        time.sleep(0.1)
        while b.recv(0.05):
            pass
        self.assertIsNone(b.recv(0.3))

    def test_send_periodic_with_every_argument_python_can_passes(self):
        a, b = self.bus(), self.bus()
        msg = can.Message(arbitration_id=0x210, data=[0], is_extended_id=False)
        if send_periodic_takes("autostart"):  # python-can >= 4.5
            task = a.send_periodic(msg, 0.01, autostart=False)
            self.assertIsNone(b.recv(0.3), "autostart=False: nothing until start()")
            task.start()
            self.assertEqual(b.recv(2).arbitration_id, 0x210)
            task.stop()
            time.sleep(0.1)
            while b.recv(0.05):
                pass
            self.assertIsNone(b.recv(0.3))
        if send_periodic_takes("modifier_callback"):
            def count_up(m):
                m.data[0] = (m.data[0] + 1) % 256

            task = a.send_periodic(can.Message(arbitration_id=0x211, data=[0], is_extended_id=False),
                                   0.01, modifier_callback=count_up)
            got = [b.recv(2).data[0] for _ in range(5)]
            task.stop()
            self.assertEqual(got, list(range(got[0], got[0] + 5)), "each frame modified once")
            time.sleep(0.1)
            while b.recv(0.05):
                pass
            self.assertIsNone(b.recv(0.3))
        # Several messages in turn (one id, python-can's rule): python-can's thread sends them.
        task = a.send_periodic([can.Message(arbitration_id=0x212, data=[i], is_extended_id=False)
                                for i in range(2)], 0.01)
        got = [b.recv(2).data[0] for _ in range(4)]
        task.stop()
        self.assertEqual(sorted(set(got)), [0, 1])
        a.stop_all_periodic_tasks()

    def test_asyncio_notifier_gets_every_frame(self):
        a, b = self.bus(), self.bus()
        n = 10000

        async def receive():
            reader = can.AsyncBufferedReader()
            notifier = can.Notifier(b, [reader], loop=asyncio.get_running_loop())
            try:
                for i in range(n):
                    a.send(can.Message(arbitration_id=0x100, data=i.to_bytes(4, "big"),
                                       is_extended_id=False))
                got = []
                while len(got) < n:
                    m = await asyncio.wait_for(reader.get_message(), 10)
                    got.append(int.from_bytes(m.data, "big"))
                return got
            finally:
                notifier.stop()

        self.assertEqual(asyncio.run(receive()), list(range(n)))

    def test_receive_own_messages(self):
        a, b = self.bus(receive_own_messages=True), self.bus()
        a.send(can.Message(arbitration_id=0x55, data=[5], is_extended_id=False))
        own = a.recv(1)
        self.assertEqual((own.arbitration_id, bytes(own.data), own.is_rx), (0x55, b"\x05", False))
        self.assertEqual(b.recv(5).arbitration_id, 0x55)
        self.assertIsNone(a.recv(0.2))

    def test_state_and_protocol(self):
        classic, fd = self.bus(), self.bus(fd=True)
        self.assertEqual(classic.state, can.BusState.ACTIVE)
        with self.assertRaises(NotImplementedError) as ctx:
            classic.state = can.BusState.PASSIVE
        self.assertIn("shares the bus", str(ctx.exception))
        if hasattr(can, "CanProtocol"):  # python-can >= 4.3
            self.assertEqual(classic.protocol, can.CanProtocol.CAN_20)
            self.assertEqual(fd.protocol, can.CanProtocol.CAN_FD)

    def test_handshake_error_carries_the_servers_text(self):
        self.server.stop()
        self.server = Server("--max_clients", "1")
        self.bus()
        with self.assertRaises(can.CanInitializationError) as ctx:
            can.Bus(self.server.channel, interface="remote")
        self.assertIn("server full", str(ctx.exception))

    def test_a_bus_at_another_bit_rate_is_refused_with_both_rates(self):
        wire = Server("--virtual-bitrate", "250000")
        try:
            with self.assertRaises(can.CanInitializationError) as caught:
                can.Bus(wire.channel, interface="remote", bitrate=500000)
            self.assertIn("the client asked for 500000 bit/s, but virtual channel 'pytest' runs "
                          "at 250000 bit/s", str(caught.exception))
            b = can.Bus(wire.channel, interface="remote")  # no bit rate asked: any will do
            self.assertEqual(b.channel_info, "virtual channel 'pytest', 250000 bit/s (canserver %s) on %s"
                             % (canserver_version(), wire.channel))
            b.shutdown()
        finally:
            self.assertEqual(wire.stop(), 0)

    def test_server_shutdown_is_reported(self):
        a = self.bus()
        self.server.stop()
        with self.assertRaises(can.CanOperationError) as ctx:
            a.recv(5)
        self.assertIn("server shutting down", str(ctx.exception))
        self.server = Server()

    def test_canrc_configures_the_default_bus(self):
        with tempfile.TemporaryDirectory() as home:
            with open(os.path.join(home, ".canrc"), "w") as f:
                f.write("[default]\ninterface = remote\nchannel = %s\n" % self.server.channel)
            code = ("import can; b = can.Bus(); print(b.channel_info); "
                    "b.send(can.Message(arbitration_id=5, is_extended_id=False)); b.shutdown()")
            listener = self.bus()
            env = dict(os.environ, HOME=home)
            env.pop("CAN_INTERFACE", None)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("on " + self.server.channel, out.stdout)
            self.assertEqual(listener.recv(5).arbitration_id, 5)

    def test_logger_writes_a_file_and_player_replays_it(self):
        a = self.bus()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.log")
            logger = subprocess.Popen([sys.executable, "-m", "can.logger", "-i", "remote",
                                       "-c", self.server.channel, "-f", path],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for_logger(path)
            for i in range(20):
                a.send(can.Message(arbitration_id=0x300 + i, data=[i], is_extended_id=False))
            time.sleep(1.0)
            logger.send_signal(signal.SIGINT)
            logger.communicate(timeout=10)
            with open(path) as f:
                text = f.read()
            frames = [l for l in text.split("\n") if "#" in l]
            self.assertEqual(len(frames), 20, text)
            self.assertRegex(frames[0], r"^\(\d+\.\d+\) pytest 300#00( R)?$")
            # can.player sends the log back onto the bus; a listener sees all of it.
            player = subprocess.run([sys.executable, "-m", "can.player", "-i", "remote",
                                     "-c", self.server.channel, "--ignore-timestamps", path],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(player.returncode, 0, player.stderr)
            got = [m.arbitration_id for m in iter(lambda: a.recv(1), None)]
            self.assertEqual(got, [0x300 + i for i in range(20)])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReconnectTest(unittest.TestCase):
    """reconnect=: a restarted server (systemctl restart canserver) does not end a test run. The
    buses open new sessions by themselves with their filters and periodic tasks, and count the
    gap."""

    def test_a_restart_is_bridged_with_filters_and_periodic_tasks(self):
        port = free_port()
        server = Server("--port", str(port))
        buses = []
        try:
            a = can.Bus(server.channel, interface="remote", reconnect=10,
                        can_filters=[{"can_id": 0x100, "can_mask": 0x700}])
            b = can.Bus(server.channel, interface="remote", reconnect=10)
            buses += [a, b]
            time.sleep(0.1)
            b.send_periodic(can.Message(arbitration_id=0x111, data=[1], is_extended_id=False),
                            0.05)
            self.assertEqual(a.recv(5).arbitration_id, 0x111)
            self.assertEqual(server.stop(), 0)
            server = Server("--port", str(port))
            a.recv(0.5)  # meets "server shutting down" and opens a new session
            self.assertEqual(a.reconnects, 1)
            time.sleep(0.1)
            b.send(can.Message(arbitration_id=0x222, data=[2], is_extended_id=False))
            b.send(can.Message(arbitration_id=0x123, data=[3], is_extended_id=False))
            self.assertEqual(b.reconnects, 1)
            seen = set()
            deadline = time.monotonic() + 10
            while not {0x111, 0x123} <= seen and time.monotonic() < deadline:
                m = a.recv(1)
                if m is not None:
                    seen.add(m.arbitration_id)
            self.assertIn(0x123, seen)  # b's frame, sent during its reconnect
            self.assertIn(0x111, seen)  # b's periodic task, restarted on the new server
            self.assertNotIn(0x222, seen)  # a's filters came back with its session
            self.assertGreater(a.gap_seconds, 0)
        finally:
            for bus in buses:
                bus.shutdown()
            server.stop()

    def test_without_reconnect_a_restart_is_an_error(self):
        port = free_port()
        server = Server("--port", str(port))
        bus = can.Bus(server.channel, interface="remote")
        try:
            server.stop()
            server = Server("--port", str(port))
            with self.assertRaises(can.CanOperationError) as ctx:
                bus.recv(5)
            self.assertIn("server shutting down", str(ctx.exception))
            self.assertEqual(bus.reconnects, 0)
        finally:
            bus.shutdown()
            server.stop()


class CutProxy:
    """A TCP relay on a free loopback port to `port`: cut() resets every connection through it
    and each new one until restore() (a network blip with the peer's stack answering). One
    thread does all the relaying, so a reset is never held up by another thread's recv()."""

    def __init__(self, port):
        self._target = port
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.channel = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._down = False
        self._cut = False
        self._peer = {}  # socket -> the other end
        threading.Thread(target=self._run, daemon=True).start()

    def _reset(self, sock):
        self._peer.pop(sock, None)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _run(self):
        while True:
            if self._cut:
                self._cut = False
                for sock in list(self._peer):
                    self._reset(sock)
            readable, _, _ = select.select([self._listener, *self._peer], [], [], 0.01)
            for sock in readable:
                if sock is self._listener:
                    client, _ = sock.accept()
                    if self._down:
                        self._reset(client)
                        continue
                    server = socket.create_connection(("127.0.0.1", self._target))
                    self._peer[client], self._peer[server] = server, client
                    continue
                other = self._peer.get(sock)
                if other is None:
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        other.sendall(data)
                except OSError:
                    data = b""
                if not data:
                    self._reset(sock)
                    self._reset(other)

    def cut(self):
        self._down = True
        self._cut = True

    def restore(self):
        self._down = False


class ResumeTest(unittest.TestCase):
    """A network blip under a running test script (#28): with reconnect=, the plugin takes its
    session back from canserver (--resume-grace, 10 s by default): its periodic task never
    stopped on the bus, and the frames of the gap arrive, in order, with nothing lost."""

    def test_a_cut_is_resumed_with_the_frames_of_the_gap(self):
        server = Server()
        proxy = CutProxy(server.port)
        a = can.Bus(proxy.channel, interface="remote", reconnect=10)
        b = can.Bus(server.channel, interface="remote")
        try:
            time.sleep(0.1)
            task = a.send_periodic(can.Message(arbitration_id=0x111, data=[1], is_extended_id=False),
                                   0.02)
            self.assertEqual(b.recv(5).arbitration_id, 0x111)
            proxy.cut()
            time.sleep(0.3)  # the server has seen the break
            for i in range(500):
                b.send(can.Message(arbitration_id=0x200, data=i.to_bytes(2, "big"),
                                   is_extended_id=False))
            # b sees a's heartbeat all through the cut
            times = []
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                m = b.recv(0.1)
                if m is not None and m.arbitration_id == 0x111:
                    times.append(m.timestamp)
            proxy.restore()
            got = []
            deadline = time.monotonic() + 15
            while len(got) < 500 and time.monotonic() < deadline:
                m = a.recv(1)
                if m is not None and m.arbitration_id == 0x200:
                    got.append(int.from_bytes(m.data, "big"))
            self.assertEqual(got, list(range(500)))
            self.assertEqual((a.reconnects, a.resumes, a.frames_lost), (1, 1, 0))
            self.assertGreater(len(times), 50)
            gaps = [y - x for x, y in zip(times, times[1:])]
            self.assertLess(max(gaps), 0.25, "the periodic task stopped during the cut")
            task.stop()
        finally:
            a.shutdown()
            b.shutdown()
            self.assertEqual(server.stop(), 0)

    def test_after_the_grace_a_new_session_brings_back_filters_and_tasks(self):
        server = Server("--resume-grace", "500ms")
        proxy = CutProxy(server.port)
        a = can.Bus(proxy.channel, interface="remote", reconnect=10,
                    can_filters=[{"can_id": 0x123, "can_mask": 0x7FF}])
        b = can.Bus(server.channel, interface="remote")
        try:
            time.sleep(0.1)
            a.send_periodic(can.Message(arbitration_id=0x111, data=[1], is_extended_id=False), 0.02)
            self.assertEqual(b.recv(5).arbitration_id, 0x111)
            proxy.cut()
            log = wait_for_log(server, "not resumed within --resume-grace")
            self.assertIn("not resumed within --resume-grace 500ms", log)
            while b.recv(0.2) is not None:  # the job's last frames
                pass
            self.assertIsNone(b.recv(0.3), "the ended session's task still sends")
            proxy.restore()
            deadline = time.monotonic() + 15
            got = None
            while got is None and time.monotonic() < deadline:
                b.send(can.Message(arbitration_id=0x124, data=[4], is_extended_id=False))
                b.send(can.Message(arbitration_id=0x123, data=[3], is_extended_id=False))
                got = a.recv(0.3)
            self.assertEqual(got.arbitration_id, 0x123)  # the filter came back with the session
            self.assertEqual((a.reconnects, a.resumes), (1, 0))
            m = b.recv(2)
            while m is not None and m.arbitration_id != 0x111:
                m = b.recv(2)
            self.assertIsNotNone(m, "the task was not restarted in the new session")
        finally:
            a.shutdown()
            b.shutdown()
            self.assertEqual(server.stop(), 0)


class RolesTest(unittest.TestCase):
    """--access: a monitor only receives. The real clients learn why in their own way and keep
    their session: the plugin raises CanOperationError with the reason; python-can's socketcand
    interface (4.1 and 4.6, which reads any '< error >' as an error frame) hears nothing unless it
    asked for errors, and goes on."""

    def setUp(self):
        self.sc_port = free_port()
        self.server = Server("--socketcand-port", str(self.sc_port), "--access", "all=* monitor")
        self.buses = []

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.assertEqual(self.server.stop(), 0)

    def test_a_monitor_is_told_and_keeps_receiving(self):
        v5 = can.Bus(self.server.channel, interface="remote")
        self.buses.append(v5)
        v5.send(can.Message(arbitration_id=0x123, data=[1], is_extended_id=False))
        with self.assertRaises(can.CanOperationError) as told:
            v5.recv(5)
        self.assertIn("may only receive (role monitor, matched rule 'all')", str(told.exception))
        self.assertIn("canserver --access", str(told.exception))
        self.assertIsNone(v5.recv(0.2))  # the session goes on

    def test_python_cans_socketcand_client_survives_the_refusal(self):
        sc = can.Bus(interface="socketcand", host="127.0.0.1", port=self.sc_port,
                     channel="pytest")
        self.buses.append(sc)
        time.sleep(0.1)
        sc.send(can.Message(arbitration_id=0x321, data=[0xA], is_extended_id=False))
        self.assertIsNone(sc.recv(0.3))
        sc.send(can.Message(arbitration_id=0x322, data=[0xB], is_extended_id=False))
        self.assertIsNone(sc.recv(0.3))


class LeaseTest(unittest.TestCase):
    """The channel's exclusive transmit lease: `with bus.lease(seconds=30)` as a flashing tool
    uses it, a process started under `canremote lease` joining it through CANSERVER_LEASE."""

    def setUp(self):
        self.server = Server()
        self.buses = []

    def bus(self, **kwargs):
        b = can.Bus(self.server.channel, interface="remote", **kwargs)
        self.buses.append(b)
        return b

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.assertEqual(self.server.stop(), 0)

    def test_the_holder_alone_transmits_until_the_block_ends(self):
        flasher, other, listener = self.bus(), self.bus(), self.bus()
        time.sleep(0.2)  # every subscription reaches the CAN thread
        with flasher.lease(seconds=2) as lease:
            self.assertRegex(lease.token, r"^[0-9a-f]{32}$")
            self.assertIn("session", lease.holder)
            other.send(can.Message(arbitration_id=0x200, data=[1], is_extended_id=False))
            with self.assertRaises(can.CanOperationError) as told:
                other.recv(5)
            self.assertRegex(str(told.exception),
                             r"leased by session \d+ \(127\.0\.0\.1:\d+\) for \d s more, so "
                             r"this client may not send frames until the lease ends")
            with self.assertRaises(can.CanOperationError) as taken:
                with other.lease(seconds=5):
                    pass
            self.assertIn("leased by session", str(taken.exception))
            time.sleep(2.5)  # renewed: still held after its first term
            flasher.send(can.Message(arbitration_id=0x100, data=[2], is_extended_id=False))
            self.assertEqual(listener.recv(5).arbitration_id, 0x100)
            self.assertIsNone(lease.lost)
        other.send(can.Message(arbitration_id=0x201, data=[3], is_extended_id=False))
        self.assertEqual(listener.recv(5).arbitration_id, 0x201)

    def test_a_bus_with_the_token_joins_and_frames_wait_for_recv(self):
        flasher, listener = self.bus(), self.bus()
        time.sleep(0.2)
        with flasher.lease(seconds=30) as lease:
            member = self.bus(lease_token=lease.token)
            member.send(can.Message(arbitration_id=0x220, data=[4], is_extended_id=False))
            self.assertEqual(listener.recv(5).arbitration_id, 0x220)
        # Frames that reached the holder while it waited for the lease's answers are received.
        self.assertEqual(flasher.recv(5).arbitration_id, 0x220)

    def test_python_cans_socketcand_client_is_held_off_and_survives(self):
        sc_port = free_port()
        self.server.stop()
        self.server = Server("--socketcand-port", str(sc_port))
        flasher, listener = self.bus(), self.bus()
        sc = can.Bus(interface="socketcand", host="127.0.0.1", port=sc_port, channel="pytest")
        self.buses.append(sc)
        time.sleep(0.2)
        with flasher.lease(seconds=30):
            sc.send(can.Message(arbitration_id=0x240, data=[6], is_extended_id=False))
            self.assertIsNone(sc.recv(0.3))  # no '< error >' it would choke on (4.6) unasked
            flasher.send(can.Message(arbitration_id=0x241, data=[7], is_extended_id=False))
            self.assertEqual(listener.recv(5).arbitration_id, 0x241)
        sc.send(can.Message(arbitration_id=0x242, data=[8], is_extended_id=False))
        self.assertEqual(listener.recv(5).arbitration_id, 0x242)

    def test_a_script_under_canremote_lease_transmits(self):
        listener = self.bus()
        canremote = os.path.join(os.path.dirname(os.environ["CANSERVER_BIN"]), "canremote")
        script = ("import can; b = can.Bus(%r, interface='remote'); "
                  "b.send(can.Message(arbitration_id=0x230, data=[5], is_extended_id=False)); "
                  "b.shutdown()" % self.server.channel)
        done = subprocess.run([canremote, "lease", "-c", self.server.channel, "10", "--",
                               sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(listener.recv(5).arbitration_id, 0x230)


class PythonServerTest(unittest.TestCase):
    """python -m canserver_remote's own server (python-can's bus behind the same protocol), for
    machines where canserver cannot run: the plugin, the original v5 client's bytes and canremote
    against it, with python-can's virtual bus watched directly as the bus."""

    def setUp(self):
        from canserver_remote.server import Server
        self.channel = "pyserver-%d" % os.getpid()
        self.bus = can.Bus(interface="virtual", channel=self.channel)
        self.watch = can.Bus(interface="virtual", channel=self.channel)  # the bus itself
        self.server = Server(self.bus, "127.0.0.1", 0, self.channel)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.buses = []

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.server.shutdown()
        self.server.server_close()
        self.bus.shutdown()
        self.watch.shutdown()

    def client(self, **kwargs):
        b = can.Bus(self.address, interface="remote", **kwargs)
        self.buses.append(b)
        return b

    def test_frames_filters_and_periodic_jobs_through_python_can(self):
        a = self.client()
        b = self.client(fd=True, can_filters=[{"can_id": 0x100, "can_mask": 0x700}])
        self.assertIn("channel '%s'" % self.channel, a.channel_info)
        time.sleep(0.1)
        a.send(can.Message(arbitration_id=0x123, data=[1, 2], is_extended_id=False))
        got = self.watch.recv(5)
        self.assertEqual((got.arbitration_id, bytes(got.data)), (0x123, b"\x01\x02"))
        self.assertEqual(b.recv(5).arbitration_id, 0x123)  # another client sees it: bus traffic
        self.watch.send(can.Message(arbitration_id=0x222, data=[3], is_extended_id=False))
        self.watch.send(can.Message(arbitration_id=0x105, data=[4], is_extended_id=False))
        self.assertEqual(a.recv(5).arbitration_id, 0x222)
        self.assertEqual(a.recv(5).arbitration_id, 0x105)
        self.assertEqual(b.recv(5).arbitration_id, 0x105)  # its filter passed 0x105, not 0x222
        fd = can.Message(arbitration_id=0x106, data=bytes(range(12)), is_fd=True,
                         bitrate_switch=True, is_extended_id=False)
        self.watch.send(fd)
        got = b.recv(5)
        self.assertTrue(got.is_fd and got.bitrate_switch and len(got.data) == 12)
        task = a.send_periodic(can.Message(arbitration_id=0x300, data=[5], is_extended_id=False),
                               0.02)
        seen, end = [], time.monotonic() + 0.5
        while time.monotonic() < end:
            m = self.watch.recv(0.1)
            if m is not None and m.arbitration_id == 0x300:
                seen.append(m)
        task.stop()
        self.assertGreater(len(seen), 5)

    def test_the_original_clients_bytes_and_canremote(self):
        with socket.create_connection(("127.0.0.1", self.server.server_address[1]), 5) as s:
            s.sendall(bytes.fromhex("01 05 00 07 a1 20 0a 00"))  # BusRequest(5, 500000), FilterConfig([])
            reply = s.recv(1024)
            self.assertEqual(reply[0], 2, reply)  # BusResponse
            s.sendall(bytes.fromhex("04"))  # TransmitSuccess: no client sends it
            self.assertEqual(s.recv(1024)[0], 6)  # RemoteException, then the end
        canremote = os.path.join(os.path.dirname(os.environ["CANSERVER_BIN"]), "canremote")
        done = subprocess.run([canremote, "send", "-c", self.address, "123#DEADBEEF"],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        got = self.watch.recv(5)
        self.assertEqual((got.arbitration_id, bytes(got.data)), (0x123, bytes.fromhex("DEADBEEF")))

    def test_python_m_serves_through_python_can_where_asked(self):
        proc = subprocess.Popen([sys.executable, "-m", "canserver_remote", "--python",
                                 "--interface", "virtual", "--channel", "pm", "--port", "0",
                                 "--host", "127.0.0.1"], stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stderr.readline()
            m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
            self.assertIsNotNone(m, line)
            a = self.client_at("127.0.0.1:" + m.group(1))
            b = self.client_at("127.0.0.1:" + m.group(1))
            time.sleep(0.1)
            a.send(can.Message(arbitration_id=0x42, data=[1], is_extended_id=False))
            self.assertEqual(b.recv(5).arbitration_id, 0x42)
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stderr.close()

    def test_python_m_starts_canserver_where_it_runs(self):
        env = dict(os.environ, PATH=os.path.dirname(os.environ["CANSERVER_BIN"]) + ":" +
                   os.environ.get("PATH", ""))
        proc = subprocess.Popen([sys.executable, "-m", "canserver_remote", "--interface",
                                 "virtual", "--channel", "pm2", "--port", "0", "--host",
                                 "127.0.0.1"], stderr=subprocess.PIPE, text=True, env=env)
        try:
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if "serving" in line:
                    break
            self.assertIn("serving virtual channel 'pm2' on 127.0.0.1:", "".join(lines))
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(10), 0)  # canserver's own clean exit on SIGTERM
            proc.stderr.close()

    def client_at(self, address):
        b = can.Bus(address, interface="remote")
        self.buses.append(b)
        return b

    def test_throughput(self):
        """Frames/s from the bus to one client (a measurement, printed; no bound)."""
        a = self.client()
        time.sleep(0.1)
        n = 5000
        start = time.monotonic()
        for i in range(n):
            self.watch.send(can.Message(arbitration_id=0x10, data=i.to_bytes(4, "big"),
                                        is_extended_id=False))
        got = 0
        while got < n and a.recv(5) is not None:
            got += 1
        elapsed = time.monotonic() - start
        print("\npython server: %d of %d frames to one client in %.2f s (%.0f frames/s)"
              % (got, n, elapsed, got / elapsed), file=sys.stderr)
        self.assertEqual(got, n)


CERTS = None


def certs():
    """The TLS tests' certificates, made once with the openssl command line
    (tests/tls/make_certs.sh: the commands docs/security.md gives a rig's owner)."""
    global CERTS
    if CERTS is None:
        CERTS = tempfile.mkdtemp(prefix="canserver-certs-")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([os.path.join(here, "..", "tls", "make_certs.sh"), CERTS], check=True)
    return CERTS


def tls_args(name=None, ca="ca.pem"):
    d = certs()
    args = {"tls_ca": os.path.join(d, ca)}
    if name:
        args.update(tls_cert=os.path.join(d, name + ".pem"), tls_key=os.path.join(d, name + ".key"))
    return args


def metric(server, name, labels):
    """One sample of the server's /metrics (the server runs with --http 127.0.0.1:0)."""
    import ssl
    import urllib.request
    with open(server.log.name) as f:
        m = re.search(r"/api/status on 127\.0\.0\.1:(\d+)( \(HTTPS)?", f.read())
    if m.group(2):  # canserver --tls: the HTTP port speaks HTTPS with the same certificate
        context = ssl.create_default_context(cafile=os.path.join(certs(), "ca.pem"))
        context.load_cert_chain(os.path.join(certs(), "logger.pem"),
                                os.path.join(certs(), "logger.key"))
        url = "https://localhost:%s/metrics" % m.group(1)
    else:
        context, url = None, "http://127.0.0.1:%s/metrics" % m.group(1)
    text = urllib.request.urlopen(url, timeout=5, context=context).read().decode()
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class TlsTest(unittest.TestCase):
    """canserver --tls with client certificates (made by the test with openssl): the plugin over
    Python's ssl module, and openssl s_client as an independent client. A certificate's name
    decides the role (--access cert:NAME); bad certificates and plain text are refused with a
    clear message, counted, and nothing of theirs reaches the bus."""

    def start(self, *flags):
        d = certs()
        self.server = Server("--tls", "required", "--tls-cert", os.path.join(d, "server.pem"),
                             "--tls-key", os.path.join(d, "server.key"), "--tls-ca",
                             os.path.join(d, "ca.pem"), "--http", "127.0.0.1:0", "--access",
                             "flash=cert:flasher-1 transmit,all=* monitor", *flags)
        self.buses = []

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.assertEqual(self.server.stop(), 0)

    def bus(self, name=None, **kwargs):
        b = can.Bus(self.server.channel, interface="remote", **tls_args(name), **kwargs)
        self.buses.append(b)
        return b

    def test_a_certificates_name_decides_its_role(self):
        self.start()
        flasher = self.bus("flasher")
        logger = self.bus("logger")
        time.sleep(0.2)
        flasher.send(can.Message(arbitration_id=0x7E0, data=[2, 0x10, 3], is_extended_id=False))
        got = logger.recv(5)
        self.assertIsNotNone(got)
        self.assertEqual(got.arbitration_id, 0x7E0)
        logger.send(can.Message(arbitration_id=0x7E1, data=[1], is_extended_id=False))
        with self.assertRaises(can.CanOperationError) as told:
            logger.recv(5)
        self.assertIn("may only receive (role monitor, matched rule 'all')", str(told.exception))
        with open(self.server.log.name) as f:
            log = f.read()
        self.assertIn("client certificate 'flasher-1', 'flasher-1.rig'", log)
        self.assertIn("role transmit, matched rule 'flash'", log)

    def test_bad_certificates_and_plain_text_are_refused_clearly_and_counted(self):
        self.start()
        cases = [
            ("expired", "certificate has expired"),
            ("serveronly", "unsuitable certificate purpose"),  # no clientAuth
            ("stranger", "unable to get local issuer certificate"),  # another CA
        ]
        for name, server_says in cases:
            with self.subTest(name):
                with self.assertRaises(can.CanInitializationError) as refused:
                    self.bus(name)
                self.assertIn("refused this client's TLS certificate", str(refused.exception))
                # The server logs once it has closed: the client may hear of it first.
                self.assertIn("TLS handshake failed: certificate verify failed: " + server_says,
                              wait_for_log(self.server, server_says))
        with self.assertRaises(can.CanInitializationError) as plain:
            can.Bus(self.server.channel, interface="remote")
        self.assertIn("accepts TLS connections only (--tls required)", str(plain.exception))
        self.assertIn("tls_ca=", str(plain.exception))
        self.assertEqual(metric(self.server, "canserver_connections_refused_total",
                                'reason="tls"'), 4)
        # Nothing of theirs reached the bus: a fresh client sees an empty bus.
        self.assertIsNone(self.bus("logger").recv(0.3))

    def test_no_certificate_where_one_is_required(self):
        self.start("--tls-client-cert", "required")
        with self.assertRaises(can.CanInitializationError) as refused:
            self.bus()
        self.assertIn("refused this client's TLS certificate", str(refused.exception))
        self.assertIn("peer did not return a certificate",
                      wait_for_log(self.server, "peer did not return a certificate"))
        self.bus("logger")  # with one it connects

    def test_a_client_that_asked_for_tls_never_falls_back_to_plain_text(self):
        self.server = Server()  # plain text only
        self.buses = []
        with self.assertRaises(can.CanInitializationError) as refused:
            self.bus("flasher")
        self.assertIn("TLS", str(refused.exception))

    def test_openssl_s_client_gets_a_bus_response(self):
        self.start()
        d = certs()
        from canserver_remote import protocol
        request = protocol.bus_request(0) + protocol.filter_config([])  # what opens a v5 session
        out = subprocess.run(
            "(printf '%s'; sleep 1) | openssl s_client -quiet -connect %s -CAfile %s -cert %s "
            "-key %s -verify_return_error -no_ign_eof" % (
                "".join("\\%03o" % b for b in request), self.server.channel,
                os.path.join(d, "ca.pem"), os.path.join(d, "flasher.pem"),
                os.path.join(d, "flasher.key")),
            shell=True, capture_output=True, timeout=30)
        self.assertIn(b"virtual channel 'pytest'", out.stdout, out.stderr)

    def test_sighup_reloads_a_rotated_certificate_without_dropping_sessions(self):
        import shutil
        import ssl
        d = certs()
        live = tempfile.mkdtemp(prefix="canserver-live-")
        for src, dst in (("server.pem", "cert.pem"), ("server.key", "cert.key")):
            shutil.copy(os.path.join(d, src), os.path.join(live, dst))
        self.server = Server("--tls", "required", "--tls-cert", os.path.join(live, "cert.pem"),
                             "--tls-key", os.path.join(live, "cert.key"))
        self.buses = []

        def served_certificate():
            context = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    return tls.getpeercert(binary_form=True)

        def pem_der(name):
            with open(os.path.join(d, name)) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        self.assertEqual(served_certificate(), pem_der("server.pem"))
        before = self.bus()
        other = self.bus()
        for src, dst in (("server2.pem", "cert.pem"), ("server2.key", "cert.key")):
            shutil.copy(os.path.join(d, src), os.path.join(live, dst))
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and served_certificate() != pem_der("server2.pem"):
            time.sleep(0.1)
        self.assertEqual(served_certificate(), pem_der("server2.pem"))
        with open(self.server.log.name) as f:
            self.assertIn("SIGHUP: reloaded the TLS certificate files", f.read())
        # The session opened before the reload still carries frames both ways.
        other.send(can.Message(arbitration_id=0x55, data=[5], is_extended_id=False))
        got = before.recv(5)
        self.assertIsNotNone(got)
        self.assertEqual(got.arbitration_id, 0x55)


class SocketcandClientTest(unittest.TestCase):
    """python-can's own `socketcand` interface (nothing of ours installed) against canserver's
    socketcand listener, next to a v5 client on the same channel."""

    def setUp(self):
        self.sc_port = free_port()
        self.server = Server("--socketcand-port", str(self.sc_port))
        self.buses = []

    def tearDown(self):
        for b in self.buses:
            b.shutdown()
        self.assertEqual(self.server.stop(), 0)

    def socketcand_bus(self):
        b = can.Bus(interface="socketcand", host="127.0.0.1", port=self.sc_port, channel="pytest")
        self.buses.append(b)
        return b

    def remote_bus(self):
        b = can.Bus(self.server.channel, interface="remote")
        self.buses.append(b)
        return b

    def test_frames_both_ways_with_a_v5_client(self):
        sc, v5 = self.socketcand_bus(), self.remote_bus()
        time.sleep(0.1)
        v5.send(can.Message(arbitration_id=0x123, data=[1, 2, 3], is_extended_id=False))
        v5.send(can.Message(arbitration_id=0x1ABCDEF0, data=b"\xff" * 8, is_extended_id=True))
        got = [sc.recv(5), sc.recv(5)]
        # python-can 4.1 reads ids back without the extended flag (it ignores the digit count).
        self.assertEqual([(m.arbitration_id, bytes(m.data)) for m in got],
                         [(0x123, b"\x01\x02\x03"), (0x1ABCDEF0, b"\xff" * 8)])
        self.assertGreater(got[0].timestamp, 1e9)
        sc.send(can.Message(arbitration_id=0x321, data=[0xA, 0xB], is_extended_id=False))
        sc.send(can.Message(arbitration_id=0x1AAAAAAA, data=[], is_extended_id=True))
        got = [v5.recv(5), v5.recv(5)]
        self.assertEqual([(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in got],
                         [(0x321, False, b"\x0a\x0b"), (0x1AAAAAAA, True, b"")])

    def test_batched_frames_what_python_can_4_1_makes_of_them(self):
        # canserver writes many elements per send. python-can < 4.3.1 drops one character after
        # each read it parses (python-can issue #1700), so a frame split across two reads is lost:
        # the count below is what its users see; canserver itself counts no loss.
        sc, v5 = self.socketcand_bus(), self.remote_bus()
        time.sleep(0.1)
        n = 5000
        for i in range(n):
            v5.send(can.Message(arbitration_id=0x100, data=i.to_bytes(4, "big"), is_extended_id=False))
        got = [int.from_bytes(m.data, "big") for m in iter(lambda: sc.recv(1.0), None)]
        self.assertEqual(got, sorted(got))  # what arrives is in bus order
        self.assertGreater(len(got), n * 0.9)
        print("\npython-can %s socketcand client: %d of %d batched frames parsed"
              % (can.__version__, len(got), n), file=sys.stderr)
        if can.__version__ >= "4.3.1":
            self.assertEqual(len(got), n)

    def test_logger_writes_a_log(self):
        v5 = self.remote_bus()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.log")
            logger = subprocess.Popen([sys.executable, "-m", "can.logger", "-i", "socketcand",
                                       "-c", "pytest", "-f", path,
                                       *bus_kwargs(host="127.0.0.1", port=self.sc_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for_logger(path)
            for i in range(20):
                v5.send(can.Message(arbitration_id=0x300 + i, data=[i], is_extended_id=False))
                time.sleep(0.01)
            time.sleep(1.0)
            logger.send_signal(signal.SIGINT)
            _, err = logger.communicate(timeout=10)
            with open(path) as f:
                text = f.read()
            frames = [l for l in text.split("\n") if "#" in l]
            self.assertEqual(len(frames), 20, text + err.decode())
            # 4.1's socketcand client marks every frame extended (can.Message's default) and
            # leaves the channel unset (the log writer then says vcan0).
            self.assertRegex(frames[0], r"^\(\d+\.\d+\) \w+ 0*300#00( R)?$")

    def test_refused_commands_leave_recv_working(self):
        # What python-can writes that socketcand refuses: an RTR (a length without data bytes)
        # and a frame longer than 8 bytes (python-can 4.6 writes its length in hex). socketcand
        # answers neither; canserver logs and counts them, and recv() goes on.
        sc, v5 = self.socketcand_bus(), self.remote_bus()
        time.sleep(0.1)
        sc.send(can.Message(arbitration_id=0x333, is_remote_frame=True, dlc=4, is_extended_id=False))
        sc.send(can.Message(arbitration_id=0x334, data=bytes(12), is_fd=True, is_extended_id=False))
        sc.send(can.Message(arbitration_id=0x335, data=[1], is_extended_id=False))
        self.assertEqual(v5.recv(5).arbitration_id, 0x335)
        self.assertIsNone(v5.recv(0.2), "the refused ones did not reach the bus")
        v5.send(can.Message(arbitration_id=0x336, data=[2], is_extended_id=False))
        for _ in range(3):  # a recv() that raised once would raise again
            got = sc.recv(2)
            if got is not None:
                break
        self.assertEqual(got.arbitration_id, 0x336)
        with open(self.server.log.name) as f:
            log = f.read()
        self.assertIn("4 data bytes announced, 0 given", log)

    def test_server_shutdown_leaves_recv_working(self):
        sc = self.socketcand_bus()
        self.server.stop()
        for _ in range(3):
            self.assertIsNone(sc.recv(0.2))  # socketcand says nothing either; no exception
        self.server = Server("--socketcand-port", str(self.sc_port))

    def test_a_thousand_opens_on_a_busy_bus(self):
        # python-can reads "< ok >" with one recv() and compares it whole: a frame in the same
        # read failed the open (1 to 3 times in 100 at 2-3 k frames/s before canserver held
        # frames back after it).
        v5 = self.remote_bus()
        tasks = [v5.send_periodic(can.Message(arbitration_id=0x100 + i, is_extended_id=False), 0.001)
                 for i in range(5)]  # 5,000 frames/s, timed by the server
        failures = []
        for _ in range(1000):
            try:
                b = can.Bus(interface="socketcand", host="127.0.0.1", port=self.sc_port,
                            channel="pytest")
                b.shutdown()
            except can.CanError as e:
                failures.append(str(e))
        for t in tasks:
            t.stop()
        self.assertEqual(failures, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
