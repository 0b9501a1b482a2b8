#!/usr/bin/env bash
# A real Guix 1.5.0 (daemon, `guix publish`, client) for the tests, in a Debian sid chroot
# (bookworm has no guix). Creates the chroot once, reuses it when it already answers
# `guix --version` with the pinned version, and (re)starts guix-daemon inside it. Safe to
# run again at any time: it never removes a chroot that still has something mounted in it.
#
# Usage: .ci/guix.sh [stop]
#
# Layout under $NARFS_GUIX_DIR (default /var/tmp/narfs-guix), read by tests/common:
#   root/        the chroot (its /tmp is where tests exchange files with the host)
#   guix-run     `guix-run CMD ARGS…` runs CMD inside the chroot with a clean environment
#   daemon.pid   the guix-daemon this script started
#   ready        written last, holds the guix version once the chroot is complete
#
# Networking: the daemon's only substitute URL is http://127.0.0.1:9 (nothing listens
# there), so nothing it does leaves the machine; tests point it at loopback servers.
set -euo pipefail
want="1.5.0"
dir="${NARFS_GUIX_DIR:-/var/tmp/narfs-guix}"
root="$dir/root"
run="$dir/guix-run"
start=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "guix: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }

mount_all() {
  local m
  for m in proc sys dev; do
    mkdir -p "$root/$m"
    mountpoint -q "$root/$m" && continue
    case $m in
      proc) mount -t proc proc "$root/proc" ;;
      sys) mount -t sysfs sysfs "$root/sys" ;;
      dev) mount --bind /dev "$root/dev" ;;
    esac
  done
}

unmount_all() {
  local m
  # Deepest first; anything else a test left mounted under the chroot goes too.
  for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" || umount -l "$m"
  done
}

daemon_alive() {
  local pid
  [ -f "$dir/daemon.pid" ] || return 1
  pid=$(cat "$dir/daemon.pid")
  kill -0 "$pid" 2>/dev/null && [ "$(readlink "/proc/$pid/root")" = "$root" ] &&
    [ -S "$root/var/guix/daemon-socket/socket" ]
}

stop_daemon() {
  if daemon_alive; then
    local pid
    pid=$(cat "$dir/daemon.pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/daemon.pid"
}

write_wrapper() {
  cat >"$run" <<EOF
#!/bin/sh
# Runs a command inside the narfs Guix chroot (made by .ci/guix.sh).
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \\
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "\$@"
EOF
  chmod +x "$run"
}

# `guix.sh stop`: stops the daemon this script started and unmounts the chroot's
# proc/sys/dev (the chroot stays, for the next run to reuse).
if [ "${1:-}" = stop ]; then
  stop_daemon
  unmount_all
  echo "guix: daemon stopped"
  exit 0
fi

if [ -f "$dir/ready" ] && mount_all && [ "$(chroot "$root" guix --version 2>/dev/null | head -1)" = "guix (GNU Guix) $want" ]; then
  echo "guix: reusing $root (guix $want)"
else
  stop_daemon
  if [ -e "$root" ]; then
    echo "guix: $root is incomplete or stale; making it again"
    unmount_all
    if awk -v r="$root" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/mounts; then
      echo "guix: something is still mounted under $root; not removing it" >&2
      exit 1
    fi
    rm -rf --one-file-system "$root"
  fi
  rm -f "$dir/ready"
  mkdir -p "$dir"
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
  }
  # The host's own mirror (the first URIs: of its deb822 sources).
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
  debootstrap --variant=minbase sid "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 || {
    tail -20 "$dir/debootstrap.log" >&2
    exit 1
  }
  echo "guix: debootstrap done in $(( $(date +%s) - start )) s"
  # sid's Release file on a snapshot mirror may be past its Valid-Until.
  echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99narfs-no-valid-until"
  mount_all
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # guile-zstd is only a Recommends, but `guix publish --compression=zstd` needs it.
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends guix guile-zstd ca-certificates lzip zstd \
    >"$dir/apt.log" 2>&1 || { tail -20 "$dir/apt.log" >&2; exit 1; }
  got=$(chroot "$root" guix --version | head -1)
  [ "$got" = "guix (GNU Guix) $want" ] || { echo "guix: installed '$got', want $want" >&2; exit 1; }
  echo "$want" >"$dir/ready"
fi

write_wrapper
mount_all
# The key `guix publish` signs with.
[ -f "$root/etc/guix/signing-key.sec" ] || "$run" guix archive --generate-key
if daemon_alive; then
  echo "guix: daemon already running (pid $(cat "$dir/daemon.pid"))"
else
  rm -f "$root/var/guix/daemon-socket/socket"
  setsid chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    guix-daemon --disable-chroot --discover=no --substitute-urls=http://127.0.0.1:9 \
    </dev/null >"$dir/daemon.log" 2>&1 &
  echo $! >"$dir/daemon.pid"
  for _ in $(seq 100); do daemon_alive && break; sleep 0.1; done
  daemon_alive || { echo "guix: daemon did not start" >&2; cat "$dir/daemon.log" >&2; exit 1; }
  echo "guix: daemon started (pid $(cat "$dir/daemon.pid"))"
fi
echo "guix: ready in $(( $(date +%s) - start )) s; run commands with $run"
