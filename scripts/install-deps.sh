#!/usr/bin/env bash
# Installs what canserver needs to build and test, from Debian 12's archive. Idempotent: when
# everything is present it only checks (about a second) and touches no package list.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang ccache pkg-config
  libabsl-dev libconcurrentqueue-dev libreaderwriterqueue-dev
  libgtest-dev libgmock-dev libbenchmark-dev libinih-dev libsocketcan-dev
  # --http (libmicrohttpd; cpp-httplib as the tests' client; JSON), sd_notify
  libmicrohttpd-dev libcpp-httplib-dev nlohmann-json3-dev libsystemd-dev
  # TLS (net/tls.h; GnuTLS for HTTPS inside libmicrohttpd) and the openssl command line the TLS
  # tests make certificates with
  libssl-dev libgnutls28-dev openssl
  # what operators and scrapers see: promtool and a real Prometheus, headless Chromium
  prometheus chromium
  # the .deb: dpkg-shlibdeps for its dependencies, lintian, man pages from --help, unit checks
  dpkg-dev lintian help2man systemd
  # canremote dump --pcap read by Wireshark's own dissectors
  tshark
  # the vcan scenarios: a real kernel under qemu, can-utils as the oracle
  qemu-system-x86 busybox-static cpio can-utils iproute2 kmod
  # python-can through canserver (Debian's 4.1, and 4.6.1 in a venv from ../shared/clients)
  python3-can python3-pip python3-setuptools python3-wheel python3-venv
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
