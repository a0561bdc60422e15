#!/usr/bin/env bash
# The mesh with transparent interception, on this machine: two "pods"
# (network namespaces on a bridge), each with an app that knows nothing
# about usher and its sidecar running as UID 2020 behind `usher init-net`.
# The app in pod "a" calls pod "b" by IP with curl and no proxy settings;
# the request crosses the wire over mTLS and b's app sees a's SPIFFE ID.
# Needs root (network namespaces), iproute2, nftables, util-linux (setpriv),
# curl, python3 and tcpdump. Usage: scripts/demo-transparent.sh [USHER_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! ip netns add usher-demo-probe 2>/dev/null; then
    echo "demo-transparent: needs root and network namespaces (ip netns); skipped" >&2
    exit 0
fi
ip netns del usher-demo-probe
USHER=${1:-}
if [ -z "$USHER" ]; then
    cargo build --locked -q -p usher-cli
    USHER=$PWD/target/debug/usher
fi
TMP=$(mktemp -d)
chmod 755 "$TMP"
ID=$$
A=usher-demo-a-$ID B=usher-demo-b-$ID SW=usher-demo-sw-$ID
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "$A" "$B" "$SW"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

say "two pods on a bridge: a = 10.204.0.1, b = 10.204.0.2"
ip netns add "$SW"; ip -n "$SW" link add br0 type bridge; ip -n "$SW" link set br0 up
i=1
for ns in "$A" "$B"; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip link add "ud$ID$i" type veth peer name "us$ID$i"
    ip link set "ud$ID$i" netns "$ns"; ip link set "us$ID$i" netns "$SW"
    ip -n "$SW" link set "us$ID$i" master br0 up
    ip -n "$ns" addr add "10.204.0.$i/24" dev "ud$ID$i"; ip -n "$ns" link set "ud$ID$i" up
    i=$((i + 1))
done

say "a CA and one certificate per pod (usher ca init / issue)"
"$USHER" ca init --trust-domain demo.local --dir "$TMP/ca" >/dev/null
for pod in a b; do
    "$USHER" ca issue --ca-dir "$TMP/ca" --spiffe-id "spiffe://demo.local/ns/demo/sa/$pod" --out "$TMP/$pod" >/dev/null
    chown -R 2020:2020 "$TMP/$pod"
done

say "b's app: a plain HTTP server on 8080 that prints who called"
cat >"$TMP/app.py" <<'PY'
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        who = self.headers.get("x-forwarded-client-cert", "(no identity)")
        body = f"hello from b; caller: {who}\n".encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("0.0.0.0", 8080), H).serve_forever()
PY
chmod 644 "$TMP/app.py"
ip netns exec "$B" setpriv --reuid=3030 --regid=3030 --clear-groups /usr/bin/python3 "$TMP/app.py" &
pids+=($!)

for pod in a b; do
    cat >"$TMP/$pod.yaml" <<YAML
service: $pod
identity: {cert: $TMP/$pod/cert.pem, key: $TMP/$pod/key.pem, bundle: $TMP/$pod/bundle.pem}
inbound: {listen: "0.0.0.0:15006", app: "127.0.0.1:8080"}
outbound:
  listen: 127.0.0.1:15001
  routes:
    - {host: b, address: "10.204.0.2:8080", identity: "spiffe://demo.local/ns/demo/sa/b"}
admin: {listen: 127.0.0.1:15000}
telemetry: {access_log: false}
YAML
    chmod 644 "$TMP/$pod.yaml"
done

say "usher in each pod, as UID 2020, then usher init-net (the pod's rules)"
for pod in a b; do
    ns=$A; [ "$pod" = b ] && ns=$B
    ip netns exec "$ns" setpriv --reuid=2020 --regid=2020 --clear-groups "$USHER" run --config "$TMP/$pod.yaml" >"$TMP/$pod.log" 2>&1 &
    pids+=($!)
done
for pod in a b; do
    ns=$A; [ "$pod" = b ] && ns=$B
    for _ in $(seq 100); do
        ip netns exec "$ns" curl -s -o /dev/null http://127.0.0.1:15000/ready && break
        python3 -c 'import time; time.sleep(0.1)'
    done
    ip netns exec "$ns" "$USHER" init-net --proxy-uid 2020 | sed -n '1p'
done

say "a's app: curl http://10.204.0.2:8080/ -H 'Host: b'   (no proxy settings)"
ip netns exec "$B" tcpdump -Z root -i "ud${ID}2" -U -n -w "$TMP/wire.pcap" tcp port 8080 2>"$TMP/tcpdump.err" &
tcpdump_pid=$!
pids+=($tcpdump_pid)
for _ in $(seq 100); do grep -q "listening on" "$TMP/tcpdump.err" && break; python3 -c 'import time; time.sleep(0.05)'; done
for _ in $(seq 100); do
    ip netns exec "$B" curl -s -o /dev/null http://127.0.0.1:8080/ && break
    python3 -c 'import time; time.sleep(0.05)'
done
ip netns exec "$A" setpriv --reuid=3030 --regid=3030 --clear-groups curl -s -H 'Host: b' http://10.204.0.2:8080/
for _ in $(seq 100); do
    [ "$(stat -c %s "$TMP/wire.pcap")" -gt 24 ] && break
    python3 -c 'import time; time.sleep(0.05)'
done
kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true

say "on the wire between the pods"
if grep -qa "GET /" "$TMP/wire.pcap"; then
    echo "the request crossed in plain text: this should not happen" >&2
    exit 1
fi
if ! python3 -c 'import sys; sys.exit(0 if b"\x16\x03" in open(sys.argv[1], "rb").read() else 1)' "$TMP/wire.pcap"; then
    echo "no TLS handshake in the capture" >&2
    exit 1
fi
echo "TLS records only: the request line never appears in the capture ($(stat -c %s "$TMP/wire.pcap") bytes)"

say "a plain-text caller that is not in the mesh (from a, as usher's UID would be exempt): refused"
ip netns exec "$A" setpriv --reuid=2020 --regid=2020 --clear-groups curl -s -m 3 -H 'Host: b' http://10.204.0.2:8080/ \
    && { echo "plain text got through" >&2; exit 1; } || echo "connection closed by b's usher (inbound.mode: strict)"

say "the rules, removed"
for ns in "$A" "$B"; do ip netns exec "$ns" "$USHER" init-net --remove; done
echo
echo "demo-transparent: OK"
