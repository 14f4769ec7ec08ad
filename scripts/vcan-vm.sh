#!/usr/bin/env bash
# Runs a command against a real Linux CAN stack that has vcan0, vcan1 and vcan2.
#
#   scripts/vcan-vm.sh -- build/tests/vcan_test --gtest_brief=1
#
# Natively when this kernel has CAN (modprobe vcan works; needs root). Otherwise inside a qemu VM
# running Debian 12's own kernel: the kernel .deb is downloaded with apt-get and unpacked — never
# installed — into a cache, a small busybox initramfs loads the CAN and 9p modules, the host's root
# is shared read-only over 9p and chrooted into, so the command runs from this very build tree
# against the guest's SocketCAN. The command's exit status comes back; 77 means "skipped": neither
# native vcan nor qemu could be had (say so plainly, ctest shows it as skipped).
#
# Environment: CANSERVER_VM_CACHE (default ~/.cache/canserver-vm), CANSERVER_VM_TIMEOUT (s, 1200),
# CANSERVER_VM_FORCE=1 to use the VM even where native vcan works.
set -euo pipefail

if [ "${1:-}" != "--" ] || [ $# -lt 2 ]; then
  echo "usage: $0 -- COMMAND [ARGS...]" >&2
  exit 2
fi
shift

cache="${CANSERVER_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/canserver-vm}"
timeout_s="${CANSERVER_VM_TIMEOUT:-1200}"

skip() {
  echo "vcan-vm: SKIPPED: $*" >&2
  exit 77
}

make_vcans() {
  for dev in vcan0 vcan1 vcan2; do
    ip link show "$dev" >/dev/null 2>&1 || ip link add dev "$dev" type vcan
    ip link set up "$dev"
  done
}

# Native: this kernel has CAN.
if [ "${CANSERVER_VM_FORCE:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] && modprobe vcan 2>/dev/null; then
  echo "vcan-vm: native vcan on $(uname -r)" >&2
  modprobe can-isotp 2>/dev/null || echo "vcan-vm: no can-isotp module here" >&2
  make_vcans
  exec "$@"
fi

command -v qemu-system-x86_64 >/dev/null || skip "no native vcan and no qemu-system-x86_64 (apt-get install qemu-system-x86)"
[ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"
command -v cpio >/dev/null || skip "no cpio (apt-get install cpio)"
[ "$(uname -m)" = x86_64 ] || skip "the VM harness boots an amd64 kernel; this host is $(uname -m)"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one preparation at a time

# 1. The kernel and its modules, from Debian's archive, unpacked once.
if [ ! -f "$cache/vmlinuz" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || skip "cannot find Debian's kernel package (apt-cache depends linux-image-amd64)"
  echo "vcan-vm: fetching $pkg (once; cached in $cache)" >&2
  rm -rf "$cache/dl" "$cache/kernel" && mkdir -p "$cache/dl"
  (cd "$cache/dl" && apt-get download "$pkg" >/dev/null 2>&1) || skip "apt-get download $pkg failed"
  dpkg -x "$cache"/dl/*.deb "$cache/kernel"
  cp "$cache"/kernel/boot/vmlinuz-* "$cache/vmlinuz.tmp" && mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
  rm -rf "$cache/dl" "$cache/initrd.gz"
fi

# 2. The initramfs: busybox, the modules (dependency order) and /init.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio
netfs fscache 9p can can-raw can-bcm can-isotp can-dev vcan slcan sch_tbf sch_plug
gf128mul ghash-generic ctr gcm tls"
init_script=$(cat <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /host /results
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do
  insmod "/lib/modules/$m.ko" || echo "vcan-vm guest: insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose host /host
mount -t 9p -o trans=virtio,version=9p2000.L results /results
for d in proc sys dev; do mount --bind /$d /host/$d; done
mkdir -p /host/dev/pts && mount -t devpts devpts /host/dev/pts  # ptys: the slcan scenario
# A writable /tmp for the guest, keeping the host's /tmp/<dir> trees the command needs (a build
# tree or checkout under /tmp) visible inside it.
mkdir -p /orig_tmp
mount --bind /host/tmp /orig_tmp
mount -t tmpfs tmpfs /host/tmp
for name in $(cat /results/tmp_binds); do
  mkdir -p "/host/tmp/$name" && mount --bind "/orig_tmp/$name" "/host/tmp/$name"
done
mount -t tmpfs tmpfs /host/run 2>/dev/null
mkdir -p /host/tmp/vcan-vm
mount --bind /results /host/tmp/vcan-vm
ip link set lo up
for dev in vcan0 vcan1 vcan2; do ip link add dev $dev type vcan && ip link set up $dev; done
echo "vcan-vm guest: up in $(cut -d' ' -f1 /proc/uptime) s"
chroot /host /bin/sh /tmp/vcan-vm/cmd.sh
echo $? > /results/rc
sync
poweroff -f
INIT
)
initrd_key=$(printf '%s\n%s\n' "$modules" "$init_script" | sha256sum | cut -c1-16)
if [ ! -f "$cache/initrd-$initrd_key.gz" ]; then
  work=$(mktemp -d)
  mkdir -p "$work/bin" "$work/lib/modules"
  cp /bin/busybox "$work/bin/busybox"
  for m in $modules; do
    f=$(find "$cache/kernel/lib/modules" -name "$m.ko" | head -1)
    [ -n "$f" ] || { rm -rf "$work"; skip "module $m.ko not in the kernel package"; }
    cp "$f" "$work/lib/modules/"
  done
  echo "$modules" | tr ' ' '\n' | grep -v '^$' > "$work/modules.list"
  printf '%s\n' "$init_script" > "$work/init"
  chmod +x "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1 > "$cache/initrd.tmp")
  mv "$cache/initrd.tmp" "$cache/initrd-$initrd_key.gz"
  rm -rf "$work"
fi
flock -u 9

# 3. Boot, run the command in the guest, bring its status back.
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
{
  echo "export HOME=/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  echo "export LANG=C.UTF-8 CANSERVER_IN_VM=1"
  printf 'cd %q || exit 125\n' "$PWD"
  printf '%q ' "$@"
  echo
} > "$results/cmd.sh"
# Top-level /tmp entries that the working directory or the command's paths live in.
for p in "$PWD" "$@"; do
  case "$p" in /tmp/?*) p=${p#/tmp/}; echo "${p%%/*}" ;; esac
done | sort -u > "$results/tmp_binds"
echo "vcan-vm: booting Debian kernel $(basename "$(ls -d "$cache"/kernel/lib/modules/*)") under qemu (TCG)" >&2
start=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
  -nodefaults -display none -serial stdio -no-reboot -kernel "$cache/vmlinuz" -initrd "$cache/initrd-$initrd_key.gz" \
  -append "console=ttyS0 quiet panic=-1" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$results",mount_tag=results,security_model=none \
  </dev/null | tr -d '\r'
qemu_rc=${PIPESTATUS[0]}
set -e
echo "vcan-vm: VM ran $(( $(date +%s) - start )) s" >&2
if [ ! -f "$results/rc" ]; then
  echo "vcan-vm: the VM ended without a result (qemu exit $qemu_rc)" >&2
  exit 1
fi
exit "$(cat "$results/rc")"
