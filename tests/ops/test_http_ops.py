"""canserver --http against the real consumers: promtool, a real Prometheus scraping it, and
headless Chromium rendering the status page.

Run by ctest (label `integration`) with CANSERVER_BIN and OUT_DIR set; see tests/CMakeLists.txt.
Exits 77 (skipped) only when promtool, prometheus or chromium is not installed
(scripts/install-deps.sh installs them).
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Client:
    """A protocol v5 client on raw sockets: handshake, then frames."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(struct.pack(">BBi", 1, 5, 0) + bytes([10, 0]))
        reply = self.sock.recv(2)
        assert reply and reply[0] == 2, reply
        self.sock.recv(reply[1])
        self.sock.settimeout(None)

    def send(self, arbitration_id, n):
        frame = struct.pack(">BdIBB8s", 3, 0.0, arbitration_id, 8, 0, bytes(8))
        self.sock.sendall(frame * n)

    def drain(self):
        self.sock.setblocking(False)
        try:
            while self.sock.recv(65536):
                pass
        except (BlockingIOError, OSError):
            pass
        self.sock.setblocking(True)

    def close(self):
        self.sock.close()


class OpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("promtool", "prometheus", "chromium"):
            if shutil.which(tool) is None:
                print("skipped: %s is not installed (scripts/install-deps.sh)" % tool)
                sys.exit(77)
        cls.out = os.environ.get("OUT_DIR", tempfile.mkdtemp())
        os.makedirs(cls.out, exist_ok=True)
        cls.log = open(os.path.join(cls.out, "canserver.log"), "w+")
        cls.proc = subprocess.Popen(
            [os.environ["CANSERVER_BIN"], "--interface", "virtual", "--channel", "bench0",
             "--channel", "bench1", "--host", "127.0.0.1", "--port", "0", "--socketcand-port", "0",
             "--http", "127.0.0.1:0", "--virtual-bitrate", "500000"],
            stderr=cls.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        cls.http = None
        ports = []
        while time.time() < deadline:
            cls.log.seek(0)
            text = cls.log.read()
            m = re.search(r"/api/status on 127\.0\.0\.1:(\d+)", text)
            ports = [int(p) for p in re.findall(r"serving virtual channel '\w+' on 127\.0\.0\.1:(\d+)", text)]
            if m and len(ports) == 2:
                cls.http = "http://127.0.0.1:%s" % m.group(1)
                break
            time.sleep(0.05)
        if cls.http is None:
            raise RuntimeError("canserver did not start: " + text)
        cls.ports = ports
        cls.stop_traffic = threading.Event()
        cls.clients = [Client(ports[0]), Client(ports[0]), Client(ports[1])]
        cls.traffic = threading.Thread(target=cls.send_traffic, daemon=True)
        cls.traffic.start()

    @classmethod
    def send_traffic(cls):
        while not cls.stop_traffic.is_set():
            cls.clients[0].send(0x100, 20)
            cls.clients[2].send(0x200, 10)
            for c in cls.clients:
                c.drain()
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.stop_traffic.set()
        cls.traffic.join(5)
        for c in cls.clients:
            c.close()
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(10)
        cls.log.close()

    def test_1_promtool_accepts_the_metrics(self):
        text = get(self.http + "/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        with open(os.path.join(self.out, "metrics.txt"), "w") as f:
            f.write(text)

    def test_2_prometheus_scrapes_rising_counters_and_forgets_closed_sessions(self):
        web = free_port()
        target = self.http[len("http://"):]
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "prometheus.yml")
            with open(config, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: canserver\n    static_configs:\n"
                        "      - targets: ['%s']\n" % target)
            prom = subprocess.Popen(
                ["prometheus", "--config.file=" + config, "--storage.tsdb.path=" + tmp + "/data",
                 "--web.listen-address=127.0.0.1:%d" % web],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.out, "prometheus.log"), "w"))
            try:
                def query(q):
                    url = "http://127.0.0.1:%d/api/v1/query?%s" % (web, urllib.parse.urlencode({"query": q}))
                    return json.loads(get(url))["data"]["result"]

                def wait_for(pred, timeout=30):
                    deadline = time.time() + timeout
                    while time.time() < deadline:
                        try:
                            result = pred()
                            if result:
                                return result
                        except OSError:
                            pass
                        time.sleep(0.5)
                    return None

                first = wait_for(lambda: query('canserver_bus_tx_frames_total{channel="bench0"}'))
                self.assertTrue(first, "Prometheus never scraped canserver")
                v1 = float(first[0]["value"][1])
                rising = wait_for(lambda: [r for r in query('canserver_bus_tx_frames_total{channel="bench0"}')
                                           if float(r["value"][1]) > v1])
                self.assertTrue(rising, "the frame counter did not rise while traffic flowed")
                rate = wait_for(lambda: [r for r in query('rate(canserver_bus_tx_frames_total{channel="bench0"}[5s])')
                                         if float(r["value"][1]) > 0])
                self.assertTrue(rate)
                # A fourth client appears, then disappears from the series after it disconnects.
                extra = Client(self.ports[1])
                extra.send(0x300, 5)
                seen = wait_for(lambda: [r for r in query('canserver_session_frames_from_client_total{channel="bench1"}')
                                         if float(r["value"][1]) == 5])
                self.assertTrue(seen, "the new client's series never appeared")
                session = seen[0]["metric"]["session"]
                extra.close()
                gone = wait_for(lambda: not query('canserver_session_frames_from_client_total{session="%s"}' % session)
                                or None)
                self.assertTrue(gone, "a closed session's series was still reported")
            finally:
                prom.send_signal(signal.SIGTERM)
                prom.wait(20)

    def test_3_chromium_renders_the_status_page(self):
        # The traffic view watches a channel from the first request for it (as the page's first
        # poll would); headless Chromium runs the page's timers in virtual time, faster than the
        # traffic, so the view is asked for first and given a couple of seconds of frames.
        urllib.request.urlopen(self.http + "/api/traffic?channel=bench0", timeout=10).read()
        time.sleep(2.5)  # a couple of polls' worth of traffic
        shot = os.path.join(self.out, "status-page.png")
        common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--virtual-time-budget=4000", "--window-size=1280,1400"]
        dom = subprocess.run(common + ["--dump-dom", self.http + "/"], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        html = dom.stdout
        with open(os.path.join(self.out, "status-page.html"), "w") as f:
            f.write(html)
        self.assertIn('data-channel="bench0"', html)
        self.assertIn('data-channel="bench1"', html)
        clients = [int(n) for n in re.findall(r'<td class="n clients">(\d+)</td>', html)]
        self.assertEqual(sum(clients), 3, html)
        rates = [int(n.replace(",", "")) for n in re.findall(r'<td class="n rate">([\d,]+)</td>', html)]
        self.assertTrue(any(r > 0 for r in rates), "no channel showed a non-zero frame rate: %s" % rates)
        # #29: the bus load (received and client-sent frames as wire bits against the 500 kbit/s
        # of --virtual-bitrate) and its graph over the polls.
        loads = [float(x) for x in re.findall(r'<td class="n load">([\d.]+) %</td>', html)]
        self.assertTrue(any(x > 0 for x in loads), "no channel showed a bus load: %s" % loads)
        # The graph shows the server's history: seconds of it, with load in them.
        points = re.search(r'<polyline points="([^"]*)"', html).group(1).split()
        self.assertGreaterEqual(len(points), 5, html)
        self.assertTrue(any(float(p.split(",")[1]) < 100 for p in points), points)
        self.assertIn('href="/metrics"', html)
        self.assertIn("everything", html)  # the clients' filters, for people
        # The traffic view of the first channel: its id table and the newest frames.
        self.assertIn('<tr data-id="100">', html)
        self.assertRegex(html, r'<td class="latency">mean [\d,]+ µs, p50 ≤ [\d,]+ µs')
        self.assertRegex(html, r'<td>100#[0-9A-F]+</td>')
        subprocess.run(common + ["--screenshot=" + shot, self.http + "/"], capture_output=True,
                       timeout=120)
        self.assertTrue(os.path.exists(shot) and os.path.getsize(shot) > 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
