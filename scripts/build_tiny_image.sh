#!/usr/bin/env bash
# Build the tiny seed guest images into $PORTAL_LIBVIRT_DIR/images/tiny/:
#   vmlinuz            Debian's kernel (the package linux-image-amd64 depends on)
#   initramfs.cpio.gz  busybox-static: /init prints "BOOT-OK kernel=<uname -r> hostname=..." on
#                      the serial console (ttyS0), then busybox init runs a root shell on tty1
#                      (the VGA console, seen over VNC) and on ttyS0; a disk agent reports
#                      virtio disks on ttyS0 (DISK-ADDED/-RESIZED/-REMOVED, by serial)
#   disk.qcow2         the same kernel and initramfs on a bootable disk (FAT + SYSLINUX, BIOS
#                      boot): the seed *disk* image, whose instances boot from a clone of it
#   manifest.json      file names, sizes, sha256, kernel version, recommended cmdline
# A cloud-init NoCloud seed (a CD-ROM labelled cidata on the IDE bus) is read at boot: the guest
# prints "SEED-OK instance-id=<id>" on ttyS0 and runs user-data that starts with "#!" (its output
# on ttyS0); the manifest says "cloud_init": true for it.
# vCPUs and memory hot-plugged into the running guest are brought online; the guest reports
# "HOTPLUG cpus=N mem_kb=M" (online CPUs, MemTotal) on ttyS0 at boot and after each change.
# Kernel cmdline options the guest honours: hostname=NAME, tiny_ip=ADDR/PREFIX [tiny_gw=ADDR]
# (configures eth0, an e1000 or virtio NIC); without tiny_ip, eth0 asks DHCP and the lease is
# reported on ttyS0 as "NET-UP eth0=ADDR/PREFIX router=… mtu=… mac=…". busybox httpd serves
# "tiny <hostname>" on port 8080. The ACPI power button (`virsh shutdown`) powers it off.
#
#   scripts/build_tiny_image.sh [--force] [--check] [--check-libvirt]
#     --force          rebuild even if the image is newer than this script
#     --check          boot it in plain QEMU (TCG) and wait for BOOT-OK on the serial console
#     --check-libvirt  boot it as a libvirt <domain type='qemu'> (starts libvirtd if needed),
#                      wait for BOOT-OK in the serial log, then destroy and undefine it
#
# Idempotent: does nothing (quietly) when the manifest exists and is newer than this script.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PORTAL_ROOT"
install_cleanup_traps
umask 022

SELF="$PORTAL_ROOT/scripts/build_tiny_image.sh"
TINY_CMDLINE="console=tty0 console=ttyS0 loglevel=3 panic=-1"
# Kernel modules the guest loads at boot, in dependency order (Debian builds them as modules).
DISK_SIZE_MB=32  # the disk image's size as guests see it
TINY_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
TINY_MODULES+=" failover net_failover virtio_net e1000 evdev button"
TINY_MODULES+=" scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs"  # the seed: IDE CD-ROM, ISO 9660
BOOT_TIMEOUT="${PORTAL_TINY_BOOT_TIMEOUT:-120}"

force=0 check_qemu=0 check_libvirt=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --check) check_qemu=1 ;;
        --check-libvirt) check_libvirt=1 ;;
        -h | --help) sed -n '2,/^set -e/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

ensure_libvirt_dir
OUT="$PORTAL_LIBVIRT_DIR/images/tiny"
MANIFEST="$OUT/manifest.json"

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$1" "$(now)"; }

# scratch NAME: SCRATCH= a new dir under PORTAL_LIBVIRT_DIR (QEMU must be able to write the
# check's serial log there), removed on exit. Not in $(...): on_exit must run in this shell.
SCRATCH=""
scratch() {
    SCRATCH="$(mktemp -d "$PORTAL_LIBVIRT_DIR/.tiny-$1.XXXXXX")"
    chmod 0755 "$SCRATCH"
    on_exit "rm -rf '$SCRATCH'"
}

up_to_date() {
    [[ -s "$OUT/vmlinuz" && -s "$OUT/initramfs.cpio.gz" && -s "$MANIFEST" && "$MANIFEST" -nt "$SELF" ]]
}

# --------------------------------------------------------------------------------------------
# Kernel: the concrete linux-image-<version>-amd64 package behind linux-image-amd64
# --------------------------------------------------------------------------------------------
kernel_package() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null \
        | sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n 1
}

# fetch_kernel DIR: extract boot/vmlinuz-* and the few modules the guest loads into DIR/x;
# DIR/kernel-package says "PACKAGE VERSION".
fetch_kernel() {
    local dir="$1" pkg deb debs
    pkg="$(kernel_package)"
    if [[ -z "$pkg" && "${PORTAL_APT_UPDATED:-}" != 1 ]]; then
        _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null 2>&1 \
            && export PORTAL_APT_UPDATED=1
        pkg="$(kernel_package)"
    fi
    [[ -n "$pkg" ]] || { log "apt knows no linux-image-amd64 (apt-get update?)"; return 1; }
    # As root apt warns that its sandbox user can't write here: harmless, so the output goes to a log.
    (cd "$dir" && apt-get download -q "$pkg" >apt-download.log 2>&1) \
        || { cat "$dir/apt-download.log" >&2; log "apt-get download $pkg failed"; return 1; }
    debs=("$dir/$pkg"_*.deb)
    deb="${debs[0]}"
    mkdir -p "$dir/x"
    # Only what is needed (the full package unpacks to ~400 MB of modules).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir/x" --wildcards \
        './boot/vmlinuz-*' \
        './lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/e1000.ko*' \
        './lib/modules/*/kernel/drivers/virtio/virtio*.ko*' \
        './lib/modules/*/kernel/drivers/block/virtio_blk.ko*' \
        './lib/modules/*/kernel/drivers/net/virtio_net.ko*' \
        './lib/modules/*/kernel/drivers/net/net_failover.ko*' \
        './lib/modules/*/kernel/net/core/failover.ko*' \
        './lib/modules/*/kernel/drivers/acpi/button.ko*' \
        './lib/modules/*/kernel/drivers/input/evdev.ko*' \
        './lib/modules/*/kernel/drivers/scsi/scsi_common.ko*' \
        './lib/modules/*/kernel/drivers/scsi/scsi_mod.ko*' \
        './lib/modules/*/kernel/drivers/scsi/sr_mod.ko*' \
        './lib/modules/*/kernel/drivers/ata/libata.ko*' \
        './lib/modules/*/kernel/drivers/ata/ata_piix.ko*' \
        './lib/modules/*/kernel/drivers/cdrom/cdrom.ko*' \
        './lib/modules/*/kernel/fs/isofs/isofs.ko*'
    printf '%s %s\n' "$pkg" "$(dpkg-deb -f "$deb" Version)" >"$dir/kernel-package"
    rm -f "$deb"
}

# --------------------------------------------------------------------------------------------
# initramfs
# --------------------------------------------------------------------------------------------
write_init() {
    cat >"$1/init" <<'EOF'
#!/bin/sh
# PID 1 of the tiny guest: mount, say BOOT-OK on the serial console, hand over to busybox init.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1

name=tiny addr='' gw=''
for word in $(cat /proc/cmdline); do
    case "$word" in
        hostname=?*) name="${word#hostname=}" ;;
        tiny_ip=?*) addr="${word#tiny_ip=}" ;;
        tiny_gw=?*) gw="${word#tiny_gw=}" ;;
    esac
done
hostname "$name"

# Modules, in dependency order: virtio disks (volumes hot-plugged as /dev/vdb…), the NIC, the
# ACPI power button (+ evdev, which acpid reads), the IDE CD-ROM and ISO 9660 (the seed).
for m in @TINY_MODULES@; do [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null; done
ip link set lo up
net=''
if [ -n "$addr" ] && [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up && ip addr add "$addr" dev eth0 && net=" eth0=$addr mac=$(cat /sys/class/net/eth0/address)"
    [ -n "$gw" ] && ip route add default via "$gw"
elif [ -e /sys/class/net/eth0 ]; then
    # DHCP in the background (the SDN answers it); /etc/udhcpc.sh reports the lease as NET-UP.
    ip link set eth0 up
    (udhcpc -i eth0 -s /etc/udhcpc.sh -t 60 -T 2 -A 2 -S >/dev/null 2>&1 &)
fi
# A web server on port 8080 (reachability checks through security groups).
mkdir -p /www && echo "tiny $name" >/www/index.html && httpd -p 8080 -h /www
acpid -c /etc/acpi 2>/dev/null

# Disk agent: says on the serial console when a virtio disk appears (its serial is the volume id;
# with what it found at 1 MiB, leaving a note there when that is empty), grows or goes away.
# Tests read it from the log. (The kernel names disks in the order they come: vda, vdb…)
(
    known=''
    while :; do
        now=''
        for dev in /sys/block/vd*; do
            [ -e "$dev" ] || continue
            disk="${dev##*/}" serial="$(cat "$dev/serial" 2>/dev/null)" sectors="$(cat "$dev/size")"
            now="$now $disk:${serial:-none}:$sectors"
            case " $known " in
                *" $disk:${serial:-none}:$sectors "*) continue ;;
                *" $disk:${serial:-none}:"*)
                    echo "DISK-RESIZED $disk serial=${serial:-none} sectors=$sectors" >/dev/ttyS0; continue ;;
            esac
            wrote=none
            if [ "$(dd if="/dev/$disk" bs=1 skip=510 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 55aa ]; then
                found=bootable  # the boot disk: read only
            else
                found="$(dd if="/dev/$disk" bs=512 skip=2048 count=1 2>/dev/null | tr -dc 'A-Za-z0-9._-' | head -c 64)"
                if [ -z "$found" ]; then
                    wrote="NOTE-FROM-$name"
                    printf '%s\n' "$wrote" | dd of="/dev/$disk" bs=512 seek=2048 conv=notrunc 2>/dev/null && sync
                fi
            fi
            echo "DISK-ADDED $disk serial=${serial:-none} sectors=$sectors found=${found:-none} wrote=$wrote" >/dev/ttyS0
        done
        for entry in $known; do
            disk="${entry%%:*}" rest="${entry#*:}"
            case " $now " in *" $disk:${rest%%:*}:"*) ;; *) echo "DISK-REMOVED $disk serial=${rest%%:*}" >/dev/ttyS0 ;; esac
        done
        known="$now"
        sleep 1
    done
) &

# cloud-init's NoCloud seed, the portal's config drive: a file system labelled cidata. Say which
# instance it is for, and run user-data when it is a script, as cloud-init runs a "#!" part (once
# per boot here: nothing persists). The CD-ROM appears a moment after its driver loads: look for
# it for a while, in the background, so a guest without one boots as fast.
(
    i=0
    until seed="$(findfs LABEL=cidata 2>/dev/null)"; do
        i=$((i + 1)); [ "$i" -lt 30 ] || exit 0
        sleep 1
    done
    mkdir -p /run/seed && mount -t iso9660 -o ro "$seed" /run/seed || exit 0
    echo "SEED-OK instance-id=$(sed -n 's/^instance-id: *//p' /run/seed/meta-data)" >/dev/ttyS0
    if [ "$(head -c 2 /run/seed/user-data)" = '#!' ]; then
        cp /run/seed/user-data /run/user-data && chmod 0700 /run/user-data && /run/user-data >/dev/ttyS0 2>&1
    fi
) &

# Hot resize: vCPUs and memory blocks the hypervisor plugs in arrive offline; bring them
# online (as distributions' udev rules do); report "HOTPLUG cpus=N mem_kb=M" on ttyS0 at boot
# and after each change.
(
    last=''
    while :; do
        for f in /sys/devices/system/cpu/cpu*/online /sys/devices/system/memory/memory*/state; do
            case "$(cat "$f" 2>/dev/null)" in
                0) echo 1 >"$f" 2>/dev/null ;;
                offline) echo online >"$f" 2>/dev/null ;;
            esac
        done
        now="cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
        [ "$now" = "$last" ] || { echo "HOTPLUG $now" >/dev/ttyS0; last="$now"; }
        sleep 1
    done
) &

# Shells: busybox init (/etc/inittab) gives each console a controlling tty and respawns it.
: >/etc/inittab
if [ "$(cat /sys/class/tty/ttyS0/type 2>/dev/null || echo 0)" != 0 ]; then
    echo 'ttyS0::respawn:-/bin/sh' >>/etc/inittab
fi
echo 'tty1::respawn:-/bin/sh' >>/etc/inittab
echo '::ctrlaltdel:/sbin/reboot' >>/etc/inittab

banner="BOOT-OK kernel=$(uname -r) hostname=$name uptime=$(cut -d' ' -f1 /proc/uptime)$net"
echo "$banner" >/dev/ttyS0 2>/dev/null
printf '\n%s\n(busybox initramfs of the cloud portal; poweroff to stop)\n' "$banner" >/dev/tty1 2>/dev/null
exec /sbin/init
EOF
    sed -i "s/@TINY_MODULES@/$TINY_MODULES/" "$1/init"
    chmod 0755 "$1/init"
}

# build_initramfs ROOT KMODDIR OUTFILE
build_initramfs() {
    local root="$1" kmod="$2" outfile="$3" busybox=/bin/busybox applet m
    if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
        log "$busybox is missing or not a static binary (apt: busybox-static)"
        return 1
    fi
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc/acpi/PWRF,lib/modules,root,tmp,run,var/log}
    ln -s /run "$root/var/run"
    cp "$busybox" "$root/bin/busybox"
    while IFS= read -r applet; do
        [[ -n "$applet" && ! -e "$root/$applet" ]] && ln -s /bin/busybox "$root/$applet"
    done < <("$busybox" --list-full)
    for m in $TINY_MODULES; do
        m="$(find "$kmod" -name "$m.ko*" | head -n 1)"
        [[ -n "$m" ]] || continue
        case "$m" in
            *.ko) cp "$m" "$root/lib/modules/" ;;
            *.ko.xz) xz -dc "$m" >"$root/lib/modules/$(basename "$m" .xz)" ;;
        esac
    done
    write_init "$root"
    # busybox udhcpc calls this with the lease in the environment ($ip, $mask = prefix length).
    cat >"$root/etc/udhcpc.sh" <<'EOF'
#!/bin/sh
case "$1" in
    deconfig) ip addr flush dev "$interface" ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/$mask" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
        echo "NET-UP $interface=$ip/$mask router=${router%% *} mtu=${mtu:-none} mac=$(cat /sys/class/net/$interface/address)" \
            >/dev/ttyS0 ;;
esac
EOF
    chmod 0755 "$root/etc/udhcpc.sh"
    printf 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1='"'"'\\h:\\w\\$ '"'"'\n' >"$root/etc/profile"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    # busybox acpid runs /etc/acpi/PWRF/00000080 on the power button (virsh shutdown)
    printf '#!/bin/sh\nexec poweroff\n' >"$root/etc/acpi/PWRF/00000080"
    chmod 0755 "$root/etc/acpi/PWRF/00000080"
    # Same inputs, same bytes: fixed mtimes, sorted names, owner root, no gzip timestamp.
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
        | cpio --null -o -H newc -R 0:0 --reproducible --quiet | gzip -9 -n) >"$outfile"
}

write_manifest() {
    python3 - "$OUT" "$1" "$TINY_CMDLINE" "$2" "$DISK_SIZE_MB" <<'EOF'
import hashlib, json, os, sys, time

out, kernel_version, cmdline, kernel_package, disk_virtual_size = sys.argv[1:6]
kernel_package, _, kernel_package_version = kernel_package.partition(" ")

def describe(name):
    path = os.path.join(out, name)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"name": name, "size": os.path.getsize(path), "sha256": h.hexdigest()}

manifest = {
    "name": "tiny",
    "description": "Debian kernel + busybox initramfs, direct kernel boot; virtio disks show as /dev/vd*",
    "arch": "x86_64",
    "machine": "pc",
    "domain_type": "qemu",
    "kernel_version": kernel_version,
    "kernel_package": kernel_package,
    "kernel_package_version": kernel_package_version,
    "kernel": describe("vmlinuz"),
    "initrd": describe("initramfs.cpio.gz"),
    "disk": {**describe("disk.qcow2"), "format": "qcow2", "virtual_size": int(disk_virtual_size) << 20},
    "cmdline": cmdline,
    "cmdline_options": {
        "hostname": "guest host name (default tiny)",
        "tiny_ip": "ADDR/PREFIX for eth0 (NIC model e1000)",
        "tiny_gw": "default gateway",
    },
    "boot_marker": "BOOT-OK",
    "cloud_init": True,  # reads a NoCloud seed: SEED-OK instance-id=…, runs #! user-data
    "memory_mib": 128,
    "nic_model": "e1000",
    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
tmp = os.path.join(out, ".manifest.json.tmp")
with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(out, "manifest.json"))
EOF
}

# build_disk VMLINUZ INITRD WORK: WORK/disk.qcow2, a BIOS-bootable disk: one FAT file system
# (no partition table) with SYSLINUX in its boot sector, the kernel, the initramfs and a
# syslinux.cfg passing TINY_CMDLINE. mtools writes into the image file: nothing is mounted.
build_disk() {
    local vmlinuz="$1" initrd="$2" work="$3" raw="$3/disk.raw"
    rm -f "$raw" "$work/disk.qcow2"
    truncate -s "${DISK_SIZE_MB}M" "$raw"
    mkfs.fat -n TINY "$raw" >/dev/null
    syslinux --install "$raw"
    printf 'DEFAULT tiny\nPROMPT 0\nTIMEOUT 0\nLABEL tiny\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND %s\n' \
        "$TINY_CMDLINE" >"$work/syslinux.cfg"
    mcopy -i "$raw" "$work/syslinux.cfg" ::syslinux.cfg
    mcopy -i "$raw" "$vmlinuz" ::vmlinuz
    mcopy -i "$raw" "$initrd" ::initrd.gz
    qemu-img convert -c -O qcow2 "$raw" "$work/disk.qcow2"
    rm -f "$raw"
}

build() {
    local t0 work kver kpkg vmlinuz found
    t0="$(now)"
    ensure_apt busybox-static cpio syslinux syslinux-common mtools dosfstools
    scratch build
    work="$SCRATCH"
    log "building the tiny guest image into $OUT"
    fetch_kernel "$work"
    found=("$work"/x/boot/vmlinuz-*)
    vmlinuz="${found[0]}"
    [[ -f "$vmlinuz" ]] || die "no boot/vmlinuz-* in the kernel package"
    kver="${vmlinuz##*/vmlinuz-}"
    kpkg="$(cat "$work/kernel-package")"
    build_initramfs "$work/root" "$work/x/lib/modules" "$work/initramfs.cpio.gz"
    mkdir -p "$OUT"
    rm -f "$MANIFEST"   # incomplete until the new one is written
    install -m 0644 "$vmlinuz" "$OUT/vmlinuz"
    install -m 0644 "$work/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
    build_disk "$vmlinuz" "$work/initramfs.cpio.gz" "$work"
    install -m 0644 "$work/disk.qcow2" "$OUT/disk.qcow2"
    write_manifest "$kver" "$kpkg"
    log "tiny image: kernel $kver, vmlinuz $(stat -c %s "$OUT/vmlinuz") B," \
        "initramfs $(stat -c %s "$OUT/initramfs.cpio.gz") B, built in $(elapsed "$t0") s"
}

# --------------------------------------------------------------------------------------------
# Boot checks
# --------------------------------------------------------------------------------------------
# wait_boot_ok FILE PID: until FILE has a BOOT-OK line (print it) or PID exits / time runs out.
wait_boot_ok() {
    local file="$1" pid="$2" i
    for ((i = 0; i < BOOT_TIMEOUT * 10; i++)); do
        if grep -a -m 1 -o 'BOOT-OK[^[:cntrl:]]*' "$file" 2>/dev/null; then return 0; fi
        [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

check_qemu() {
    local work t0 pid line
    ensure_apt qemu-system-x86
    scratch qemu
    work="$SCRATCH"
    t0="$(now)"
    timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 128 -nographic -no-reboot \
        -kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.cpio.gz" \
        -append "console=ttyS0 loglevel=3 panic=-1 hostname=tiny-check" \
        </dev/null >"$work/serial.log" 2>&1 &
    pid=$!
    on_exit "_kill_pid $pid timeout"
    if line="$(wait_boot_ok "$work/serial.log" "$pid")"; then
        log "qemu (TCG): $line ($(elapsed "$t0") s after start)"
        _kill_pid "$pid" timeout
        return 0
    fi
    _kill_pid "$pid" timeout
    tail -n 20 "$work/serial.log" >&2
    log "qemu (TCG): no BOOT-OK within ${BOOT_TIMEOUT}s"
    return 1
}

check_libvirt() {
    local work name virsh t0 line vnc qemu_log rc=0
    libvirt_start
    scratch libvirt
    work="$SCRATCH"
    name="tiny-check-$$"
    virsh=(virsh -q -c "$PORTAL_LIBVIRT_SYSTEM_URI")
    cat >"$work/domain.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$OUT/vmlinuz</kernel>
    <initrd>$OUT/initramfs.cpio.gz</initrd>
    <cmdline>$TINY_CMDLINE hostname=$name</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path='$work/serial.log'/>
      <target port='0'/>
    </serial>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <video><model type='vga'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    # libvirt also keeps a per-domain QEMU log: remove it with the domain.
    qemu_log="/var/log/libvirt/qemu/$name.log"
    on_exit "${virsh[*]} destroy $name; ${virsh[*]} undefine $name; rm -f $qemu_log"
    t0="$(now)"
    if ! "${virsh[@]}" define "$work/domain.xml" >/dev/null || ! "${virsh[@]}" start "$name" >/dev/null; then
        log "libvirt: could not define/start the check domain $name"
        rc=1
    elif line="$(wait_boot_ok "$work/serial.log" "")"; then
        vnc="$("${virsh[@]}" vncdisplay "$name" 2>/dev/null || true)"
        log "libvirt <domain type='qemu'>: $line (define -> BOOT-OK $(elapsed "$t0") s, VNC ${vnc:-?})"
    else
        tail -n 20 "$work/serial.log" >&2 2>/dev/null
        log "libvirt: no BOOT-OK within ${BOOT_TIMEOUT}s in the serial log"
        rc=1
    fi
    if ((rc)); then tail -n 5 "$qemu_log" >&2 2>/dev/null || true; fi
    "${virsh[@]}" destroy "$name" >/dev/null 2>&1 || true
    "${virsh[@]}" undefine "$name" >/dev/null 2>&1 || true
    rm -f "$qemu_log"
    return "$rc"
}

if ((force)) || ! up_to_date; then build; fi
if ((check_qemu)); then check_qemu; fi
if ((check_libvirt)); then check_libvirt; fi
