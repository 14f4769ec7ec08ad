"""python -m canserver_remote: serve a CAN bus to remote CAN protocol clients (v5/v6).

On Linux with canserver installed, this starts canserver with the same arguments (the fast,
hardened server). Elsewhere — Windows, macOS — or with --python, or for an interface canserver
does not drive (Vector XL, Kvaser CANlib, PCAN-Basic), it serves the bus through python-can itself
(canserver_remote.server), with the same protocol on the same port.
"""
import argparse
import logging
import os
import shutil
import sys

import can

from . import protocol
from .server import Server

# What canserver itself serves on Linux (canserver --help, --interface).
CANSERVER_INTERFACES = {"socketcan", "virtual", "slcan", "kvaser", "pcan", "gs_usb", "candle",
                        "cantact", "usb2can", "ixxat"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m canserver_remote",
        description="Serve a CAN bus to python-can 'remote' clients (protocol v5/v6): canserver "
                    "where it runs, else python-can itself.")
    parser.add_argument("--interface", "-i", default=None,
                        help="python-can interface (default: python-can's configuration, else "
                             "socketcan)")
    parser.add_argument("--channel", "-c", default=None, help="python-can channel")
    parser.add_argument("--bitrate", "-b", type=int, default=0, help="bit rate to open the bus at")
    parser.add_argument("--fd", action="store_true", help="open the bus for CAN FD")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", "-p", type=int, default=protocol.DEFAULT_PORT)
    parser.add_argument("--python", action="store_true",
                        help="serve through python-can even where canserver could")
    args, _ = parser.parse_known_args(argv)
    config = can.util.load_config(config={k: v for k, v in
                                          (("interface", args.interface),
                                           ("channel", args.channel)) if v})
    interface = config.get("interface") or "socketcan"
    channel = config.get("channel") or ("can0" if interface == "socketcan" else 0)
    canserver = shutil.which("canserver")
    if (not args.python and sys.platform.startswith("linux") and canserver
            and interface in CANSERVER_INTERFACES):
        forwarded = [a for a in argv if a != "--python"]
        os.execv(canserver, [canserver] + forwarded)
    parser.parse_args(argv)  # the python server takes only its own options
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kwargs = {"interface": interface, "channel": channel}
    if args.bitrate:
        kwargs["bitrate"] = args.bitrate
    if args.fd:
        kwargs["fd"] = True
    try:
        bus = can.Bus(**kwargs)
    except (can.CanError, ValueError, OSError) as e:
        print("canserver_remote: cannot open %s channel %s: %s" % (interface, channel, e),
              file=sys.stderr)
        return 1
    server = Server(bus, args.host, args.port, channel, args.bitrate)
    logging.info("serving python-can %s channel '%s' on %s:%d (python server)", interface, channel,
                 args.host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        bus.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
