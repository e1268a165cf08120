# Shared by scripts/ktls-vm-test and scripts/ktls-vm-bench, which run as
# /init inside scripts/ktls-vm's VM (busybox sh) and source this file as
# /ktls-vm-common.sh. The caller sets TAG, the prefix of every line it
# prints ("ktls-test", "ktls-bench").

say() { echo "$TAG: $*"; }
fail() {
  say "FAIL: $*"
  for f in /tmp/server*.log; do
    [ -f "$f" ] && tail -20 "$f" | sed "s|^|$TAG: $f: |"
  done
  poweroff -f
  exit 1
}

# The VM's file systems, loopback, and the kernel's TLS with the AEADs it
# asks the crypto API for (their fast x86 versions where the CPU has them).
vm_setup() {
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev
  mount -t tmpfs tmp /tmp
  mount -t tmpfs data /data
  ip link set lo up
  depmod || fail "depmod"
  modprobe tls || fail "modprobe tls"
  for m in aesni_intel ghash_clmulni_intel gcm chacha_x86_64 poly1305_x86_64 chacha20poly1305; do
    modprobe "$m" 2>/dev/null || say "note: no module $m"
  done
  [ -r /proc/net/tls_stat ] || fail "no /proc/net/tls_stat after modprobe tls"
}

# TlsTxSw / TlsRxSw: how many sockets' sends the kernel has encrypted, and
# whose receives it has decrypted, so far.
tx_sw() { awk '/^TlsTxSw / {print $2}' /proc/net/tls_stat; }
rx_sw() { awk '/^TlsRxSw / {print $2}' /proc/net/tls_stat; }

# start_server LOG [ARGS...]: a server with a self-signed certificate on a
# free loopback port, serving $ROOT (default /data) to bench:bench; sets
# $port and $server_pid.
start_server() {
  log=$1
  shift
  FERROFTP_LOG=info ferroftp serve --listen 127.0.0.1:0 --root "${ROOT:-/data}" --user bench:bench \
    --tls-self-signed "$@" >"$log" 2>&1 &
  server_pid=$!
  tries=0
  while ! grep -q 'listening on ftp://' "$log"; do
    tries=$((tries + 1))
    [ $tries -gt 300 ] && fail "server did not start ($log)"
    sleep 0.1
  done
  port=$(sed -n 's|.*listening on ftp://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" | head -1)
}
