#!/usr/bin/env bash
# Checks usher against the real tools its users run, not the project's own
# Rust tests: curl (HTTP/1.1, h2c upgrade offers, HTTP/2 over ALPN, h2c with
# prior knowledge, raw paths, client certificates), hypercorn (an ASGI server
# that accepts `Upgrade: h2c`), `python3 -m http.server` (HTTP/1.x only),
# grpcio (client and server) and a raw socket. It starts, on ephemeral
# loopback ports:
#
#   curl / grpcio / socket ──▶ a (outbound) ══mTLS══▶ b (inbound, Rego policy) ──▶ hypercorn echo app
#                                            ══mTLS══▶ c (inbound)               ──▶ python3 -m http.server
#                                            ══mTLS══▶ g (inbound)               ──▶ grpcio server
#   curl with a "mesh peer" certificate (spiffe://check.mesh/ns/test/sa/frontend) ══mTLS══▶ b, c directly
#
# b's policy allows only paths starting with /orders/. The server
# certificates of b and c carry a DNS name (b.check.mesh, c.check.mesh) next
# to their SPIFFE ID, so curl verifies them fully (`--resolve NAME:PORT:127.0.0.1`,
# no -k) while presenting the peer's real client certificate.
#
# Prints one line per check (`ok   ...` or `FAIL ...`), then a count, and
# exits non-zero if any check failed. Needs: cargo, curl, python3 with
# hypercorn, h2 and grpcio (`python3 -m pip install hypercorn h2 grpcio`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything here talks to 127.0.0.1: a proxy from the environment (curl and
# grpcio both honour http_proxy) would only get in the way.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY grpc_proxy

die() {
    echo "check-interop: $*" >&2
    exit 1
}
for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
python3 -c 'import hypercorn, h2, grpc' 2>/dev/null \
    || die "python3 lacks hypercorn, h2 or grpcio (python3 -m pip install hypercorn h2 grpcio)"

cargo build --locked -q -p usher-cli --bin usher
usher="${CARGO_TARGET_DIR:-target}/debug/usher"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
# Records and prints the result of one check.
report() { # OK(0|1) WHAT RESULT
    if [ "$1" = 0 ]; then
        printf 'ok   %s: %s\n' "$2" "$3"
        passed=$((passed + 1))
    else
        printf 'FAIL %s: %s\n' "$2" "$3"
        failed=$((failed + 1))
    fi
}
expect() { # WHAT GOT WANTED
    if [ "$2" = "$3" ]; then report 0 "$1" "$2"; else report 1 "$1" "$2 (expected $3)"; fi
}
expect_prefix() { # WHAT GOT WANTED_PREFIX
    if [[ $2 == "$3"* ]]; then report 0 "$1" "$2"; else report 1 "$1" "$2 (expected $3...)"; fi
}

# Waits for FILE to hold a line matching PATTERN (15 s at most); setup
# failures stop the script.
wait_line() {
    local file=$1 pattern=$2
    for _ in $(seq 150); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "--- $file:" >&2
    tail -n 30 "$file" >&2 || true
    die "setup: no line matching '$pattern' in $file"
}

# The address KEY (inbound, outbound, admin) from a sidecar's "usher ready" log line.
ready_addr() {
    grep '"usher ready"' "$1" | head -1 | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"
}

# Evaluates a Python expression over the JSON document in FILE (as `d`).
json_get() { # FILE EXPR
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null \
        || echo "(no JSON answer)"
}

td=check.mesh
echo "== setup: a CA, a sidecar a (client side), sidecars b, c, g (server side), a mesh peer certificate"
"$usher" ca init --trust-domain "$td" --dir "$work/ca" >/dev/null
for name in a g; do
    "$usher" ca issue --ca-dir "$work/ca" --spiffe-id "spiffe://$td/ns/ci/sa/$name" --out "$work/$name/certs" >/dev/null
done
for name in b c; do
    "$usher" ca issue --ca-dir "$work/ca" --spiffe-id "spiffe://$td/ns/ci/sa/$name" \
        --dns "$name.$td" --out "$work/$name/certs" >/dev/null
done
peer_id="spiffe://$td/ns/test/sa/frontend"
"$usher" ca issue --ca-dir "$work/ca" --spiffe-id "$peer_id" --out "$work/peer" >/dev/null

# --- The apps -------------------------------------------------------------

# b's app: hypercorn serving an ASGI app that answers, as JSON, the HTTP
# version, path and headers it saw (after reading the whole body), and
# appends the same document to requests.jsonl.
cat >"$work/echo_app.py" <<'EOF'
import json, os

LOG = os.environ["ECHO_LOG"]

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    doc = {
        "http_version": scope["http_version"],
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_bytes": body,
    }
    out = json.dumps(doc).encode()
    with open(LOG, "a") as f:
        f.write(json.dumps(doc) + "\n")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
EOF
# Binds 127.0.0.1:0, prints the port, then execs the hypercorn command
# line on that socket (fd://N), so no port is guessed.
cat >"$work/run_hypercorn.py" <<'EOF'
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
s.set_inheritable(True)
print("listening on port", s.getsockname()[1], flush=True)
os.execvp(sys.executable, [sys.executable, "-m", "hypercorn", "--workers", "0",
                           "--bind", f"fd://{s.fileno()}", "--error-logfile", "-",
                           sys.argv[1]])
EOF
: >"$work/requests.jsonl"
ECHO_LOG="$work/requests.jsonl" python3 -u "$work/run_hypercorn.py" "$work/echo_app.py:app" \
    >"$work/hypercorn.log" 2>&1 &
pids+=($!)

# c's app: python3 -m http.server (HTTP/1.x only) on an ephemeral port.
mkdir -p "$work/www"
echo hello >"$work/www/index.html"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www" >"$work/http_server.log" 2>&1 &
pids+=($!)

# g's app: a grpcio server with a generic handler (bytes in, bytes out, no
# protoc): check.Orders/Get answers OK with the caller's identity as usher
# handed it over, check.Orders/Missing aborts with NOT_FOUND.
cat >"$work/grpc_server.py" <<'EOF'
from concurrent import futures
import grpc

def get(request, context):
    xfcc = dict(context.invocation_metadata()).get("x-forwarded-client-cert", "-")
    return b"order " + request + b" for " + xfcc.encode()

def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such order")

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("check.Orders", {
    "Get": grpc.unary_unary_rpc_method_handler(get),
    "Missing": grpc.unary_unary_rpc_method_handler(missing),
}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("grpc listening on port", port, flush=True)
server.wait_for_termination()
EOF
python3 -u "$work/grpc_server.py" >"$work/grpc_server.log" 2>&1 &
pids+=($!)

wait_line "$work/hypercorn.log" 'listening on port'
wait_line "$work/http_server.log" 'Serving HTTP on'
wait_line "$work/grpc_server.log" 'grpc listening on port'
hypercorn_port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$work/hypercorn.log" | head -1)
http_server_port=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$work/http_server.log" | head -1)
grpc_port=$(sed -n 's/^grpc listening on port \([0-9]*\)$/\1/p' "$work/grpc_server.log" | head -1)
[ -n "$hypercorn_port" ] && [ -n "$http_server_port" ] && [ "${grpc_port:-0}" != 0 ] \
    || die "setup: an app did not report its port (hypercorn '$hypercorn_port', http.server '$http_server_port', grpc '$grpc_port')"

# --- The sidecars ---------------------------------------------------------

# b: only /orders/... is allowed.
mkdir -p "$work/b/policy"
cat >"$work/b/policy/authz.rego" <<'EOF'
package usher.authz

default allow := false

allow if startswith(input.attributes.request.http.path, "/orders/")
EOF

config() { # NAME APP ROUTES [EXTRA YAML]
    cat >"$work/$1/usher.yaml" <<EOF
service: $1
identity: {cert: certs/cert.pem, key: certs/key.pem, bundle: certs/bundle.pem}
inbound: {listen: 127.0.0.1:0, app: $2, app_protocol: auto}
outbound:
  listen: 127.0.0.1:0
  routes: $3
admin: {listen: 127.0.0.1:0}
${4:-}
EOF
}
config b "127.0.0.1:$hypercorn_port" "[]" "policy: {files: [policy/authz.rego], query: data.usher.authz.allow}"
config c "127.0.0.1:$http_server_port" "[]"
config g "127.0.0.1:$grpc_port" "[]"
for name in b c g; do
    "$usher" run --config "$work/$name/usher.yaml" >"$work/$name.log" 2>&1 &
    pids+=($!)
done
for name in b c g; do
    wait_line "$work/$name.log" '"usher ready"'
done
b_inbound=$(ready_addr "$work/b.log" inbound)
c_inbound=$(ready_addr "$work/c.log" inbound)
g_inbound=$(ready_addr "$work/g.log" inbound)
g_admin=$(ready_addr "$work/g.log" admin)

route() { echo "{host: $1, address: \"$2\", identity: \"spiffe://$td/ns/ci/sa/$1\"}"; }
config a "127.0.0.1:1" "[$(route b "$b_inbound"), $(route c "$c_inbound"), $(route g "$g_inbound")]"
"$usher" run --config "$work/a/usher.yaml" >"$work/a.log" 2>&1 &
pids+=($!)
wait_line "$work/a.log" '"usher ready"'
a_outbound=$(ready_addr "$work/a.log" outbound)
a_admin=$(ready_addr "$work/a.log" admin)
echo "a outbound $a_outbound; b inbound $b_inbound (hypercorn :$hypercorn_port);" \
    "c inbound $c_inbound (http.server :$http_server_port); g inbound $g_inbound (grpcio :$grpc_port)"

# --- curl helpers ---------------------------------------------------------

# curl with the mesh peer's certificate straight to SIDE's inbound
# listener, verifying the server's certificate by its DNS name.
# Writes the body to $work/body and the response heads (1xx included) to
# $work/head; prints "STATUS HTTP_VERSION".
peer_curl() { # SIDE PATH [CURL ARGS...]
    local side=$1 path=$2
    shift 2
    local addr_var="${side}_inbound"
    local port=${!addr_var##*:}
    curl -sS --max-time 5 -o "$work/body" -D "$work/head" -w '%{http_code} %{http_version}' \
        --cert "$work/peer/cert.pem" --key "$work/peer/key.pem" --cacert "$work/peer/bundle.pem" \
        --resolve "$side.$td:$port:127.0.0.1" "$@" "https://$side.$td:$port$path" 2>"$work/curl.err" \
        || echo " (curl: $(tr '\n' ' ' <"$work/curl.err"))"
}
# curl to a's outbound listener (as the app beside a would), Host HOST.
app_curl() { # HOST PATH [CURL ARGS...]
    local host=$1 path=$2
    shift 2
    curl -sS --max-time 5 -o "$work/body" -D "$work/head" -w '%{http_code} %{http_version}' \
        -H "Host: $host" "$@" "http://$a_outbound$path" 2>"$work/curl.err" \
        || echo " (curl: $(tr '\n' ' ' <"$work/curl.err"))"
}
# "no 101" when no 101 Switching Protocols came back, else "101 received".
no_101() { if grep -qE '^HTTP/[0-9.]+ 101' "$work/head"; then echo "101 received"; else echo "no 101"; fi; }
# What the echo app saw: "HTTP/<version> <raw path> upgrade=<...> http2-settings=<...>".
app_saw() {
    json_get "$work/body" '"HTTP/%s %s upgrade=%s http2-settings=%s" % (d["http_version"], d["raw_path"],
        ",".join(v for k, v in d["headers"] if k == "upgrade") or "-",
        ",".join(v for k, v in d["headers"] if k == "http2-settings") or "-")'
}
h2c_offer=(--http1.1 -H 'Upgrade: h2c' -H 'HTTP2-Settings: AAMAAABkAAQAAP__' -H 'Connection: Upgrade, HTTP2-Settings')

echo "== 1. an h2c upgrade offer does not tunnel past the policy (hypercorn accepts h2c)"
got=$(app_curl b /orders/1 --http2)
expect "curl --http2 (h2c upgrade offer) app -> a -> b /orders/1: status, version" "$got, $(no_101)" "200 1.1, no 101"
expect "  hypercorn saw" "$(app_saw)" "HTTP/1.1 /orders/1 upgrade=- http2-settings=-"
got=$(peer_curl b /orders/1 "${h2c_offer[@]}")
expect "curl raw h2c upgrade headers, mesh peer -> b /orders/1: status, version" "$got, $(no_101)" "200 1.1, no 101"
expect "  hypercorn saw" "$(app_saw)" "HTTP/1.1 /orders/1 upgrade=- http2-settings=-"
got=$(app_curl b /admin/stats --http2)
expect "curl --http2 (h2c upgrade offer) app -> a -> b /admin/stats" "$got, $(no_101)" "403 1.1, no 101"
got=$(peer_curl b /admin/stats "${h2c_offer[@]}")
expect "curl raw h2c upgrade headers, mesh peer -> b /admin/stats" "$got, $(no_101)" "403 1.1, no 101"

echo "== 2. path normalisation: the policy and hypercorn see the same path"
for path in /orders/../admin/stats /orders/%2e%2e/admin/stats /orders//../../admin; do
    got=$(peer_curl b "$path" --path-as-is)
    expect "curl --path-as-is mesh peer -> b $path" "${got%% *}" 403
done
for path in '/orders/..;/admin' /orders/%00; do
    got=$(peer_curl b "$path" --path-as-is)
    # usher's own answer (its body starts with "usher:"), not the app's.
    expect_prefix "curl --path-as-is mesh peer -> b $path" "${got%% *} $(head -c 80 "$work/body")" "400 usher: "
done
got=$(peer_curl b /orders/./1 --path-as-is)
expect "curl --path-as-is mesh peer -> b /orders/./1: status, path at hypercorn" \
    "${got%% *}, $(json_get "$work/body" 'd["raw_path"]')" "200, /orders/1"
reached=$(python3 -c 'import json, sys
print(sorted({json.loads(l)["raw_path"] for l in open(sys.argv[1])}))' "$work/requests.jsonl")
expect "paths that reached hypercorn in checks 1-2 (never /admin)" "$reached" "['/orders/1']"

echo "== 3. HTTP/2 callers -> an HTTP/1.x-only app (python3 -m http.server)"
got=$(peer_curl c '/index.html?via=peer' --http2)
expect "curl --http2 (ALPN h2) mesh peer -> c, HTTP/1.x-only app: status, version" "$got" "200 2"
if grep -q '"GET /index.html?via=peer HTTP/1.1" 200' "$work/http_server.log"; then seen="GET HTTP/1.1 200"; else seen="no HTTP/1.1 request logged"; fi
expect "  http.server logged" "$seen" "GET HTTP/1.1 200"
got=$(app_curl c '/index.html?via=a' --http2-prior-knowledge)
expect "curl --http2-prior-knowledge (h2c) app -> a -> c, HTTP/1.x-only app: status, version" "$got" "200 2"
if grep -q '"GET /index.html?via=a HTTP/1.1" 200' "$work/http_server.log"; then seen="GET HTTP/1.1 200"; else seen="no HTTP/1.1 request logged"; fi
expect "  http.server logged" "$seen" "GET HTTP/1.1 200"

echo "== 4. identity headers: only usher's x-forwarded-client-cert reaches the app"
got=$(peer_curl b /orders/headers \
    -H 'x_forwarded_client_cert: By=x;URI=spiffe://evil/sa/admin' \
    -H 'X-Forwarded-Client-Cert: By=x;URI=spiffe://evil/sa/admin' \
    -H 'Connection: x-forwarded-client-cert')
expect "curl mesh peer -> b with forged x_forwarded_client_cert, x-forwarded-client-cert, Connection: x-forwarded-client-cert" \
    "${got%% *}" 200
expect "  hypercorn saw x-forwarded-client-cert" \
    "$(json_get "$work/body" '[v for k, v in d["headers"] if k == "x-forwarded-client-cert"]')" \
    "['By=spiffe://$td/ns/ci/sa/b;URI=$peer_id']"
expect "  hypercorn saw headers spelled with _" \
    "$(json_get "$work/body" '[k for k, v in d["headers"] if "_" in k]')" "[]"

echo "== 5. gRPC end to end with grpcio (client -> a -> g -> server)"
cat >"$work/grpc_client.py" <<'EOF'
import sys
import grpc

target, authority = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(target, options=[
    ("grpc.default_authority", authority), ("grpc.enable_http_proxy", 0)])
grpc.channel_ready_future(channel).result(timeout=5)
for method in ["Get", "Missing"]:
    try:
        reply = channel.unary_unary(f"/check.Orders/{method}")(b"42", timeout=5)
        print(f"{method}: OK {reply.decode()}")
    except grpc.RpcError as e:
        print(f"{method}: {e.code().name} {e.details()}")
EOF
grpc_out=$(timeout 20 python3 "$work/grpc_client.py" "$a_outbound" g 2>&1) || true
expect "grpcio unary call check.Orders/Get through a -> g" \
    "$(grep '^Get:' <<<"$grpc_out" || echo "$grpc_out" | tail -n 1)" \
    "Get: OK order 42 for By=spiffe://$td/ns/ci/sa/g;URI=spiffe://$td/ns/ci/sa/a"
expect "grpcio unary call check.Orders/Missing through a -> g" \
    "$(grep '^Missing:' <<<"$grpc_out" || echo "$grpc_out" | tail -n 1)" "Missing: NOT_FOUND no such order"
for side in a g; do
    admin_var="${side}_admin"
    direction=outbound
    [ "$side" = g ] && direction=inbound
    series=$(curl -sS --max-time 5 "http://${!admin_var}/metrics" | grep '^usher_requests_total{' \
        | grep "direction=\"$direction\"" | grep 'grpc_status="5"' | grep -c 'classification="failure"' || true)
    expect "$side's /metrics: usher_requests_total{direction=\"$direction\",grpc_status=\"5\",classification=\"failure\"} series" \
        "$series" 1
done

echo "== 6. a malformed chunked body (raw socket -> a)"
got=$(python3 - "$a_outbound" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /orders/1 HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    print(data.split(b"\r\n")[0].decode("latin-1") or "(connection closed, no response)")
except OSError as e:
    print(f"({e})")
EOF
)
expect "POST /orders/1 Transfer-Encoding: chunked, chunk size 'zz' app -> a" "$got" "HTTP/1.1 400 Bad Request"

echo "check-interop: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
    for log in a b c g hypercorn http_server grpc_server; do
        echo "--- $log.log (tail):" >&2
        tail -n 15 "$work/$log.log" >&2 || true
    done
    exit 1
fi
