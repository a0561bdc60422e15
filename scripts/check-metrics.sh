#!/usr/bin/env bash
# Checks /metrics with the real Prometheus tools: starts a sidecar pair
# (`usher ca init`, `usher ca issue`, `usher run`) in front of a small HTTP
# app, sends a few requests through it, then
#   - scrapes each admin listener with curl, once without an Accept header
#     (Prometheus text format 0.0.4) and once asking for OpenMetrics, and
#     checks the Content-Type of each;
#   - runs `promtool check metrics` on the 0.0.4 text;
#   - runs a real Prometheus server that scrapes both sidecars (it asks for
#     OpenMetrics first, so its OpenMetrics parser reads them) and checks
#     that both targets are up, without a scrape error, and that the series
#     and their types arrived.
# Exits non-zero on the first failure. Needs: cargo, curl, python3, and
# promtool + prometheus (Debian: `apt-get install -y prometheus curl`).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in curl python3 promtool prometheus; do
    command -v "$tool" >/dev/null || { echo "check-metrics: $tool is not installed" >&2; exit 1; }
done

cargo build --locked -q -p usher-cli --bin usher
usher="${CARGO_TARGET_DIR:-target}/debug/usher"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "check-metrics: FAIL: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits for FILE to hold a line matching PATTERN (10 s at most).
wait_line() {
    local file=$1 pattern=$2
    for _ in $(seq 100); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "--- $file:" >&2
    cat "$file" >&2 || true
    fail "no line matching '$pattern' in $file"
}

# The address KEY (inbound, outbound, admin) from a sidecar's "usher ready" log line.
ready_addr() {
    grep '"usher ready"' "$1" | head -1 | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"
}

echo "== a sidecar pair"
"$usher" ca init --trust-domain check.mesh --dir "$work/ca" >/dev/null
for name in a b; do
    "$usher" ca issue --ca-dir "$work/ca" --spiffe-id "spiffe://check.mesh/ns/ci/sa/$name" \
        --out "$work/$name/certs" >/dev/null
done

# The app behind b: a static file server.
mkdir -p "$work/www"
echo hello >"$work/www/index.html"
app_port=$(free_port)
python3 -m http.server "$app_port" --bind 127.0.0.1 --directory "$work/www" >"$work/app.log" 2>&1 &
pids+=($!)

config() { # NAME APP ROUTES
    cat >"$work/$1/usher.yaml" <<EOF
service: $1
identity: {cert: certs/cert.pem, key: certs/key.pem, bundle: certs/bundle.pem}
inbound: {listen: 127.0.0.1:0, app: $2}
outbound:
  listen: 127.0.0.1:0
  routes: $3
admin: {listen: 127.0.0.1:0}
telemetry: {access_log: false}
EOF
}

config b "127.0.0.1:$app_port" "[]"
"$usher" run --config "$work/b/usher.yaml" >"$work/b.log" 2>&1 &
pids+=($!)
wait_line "$work/b.log" '"usher ready"'
b_inbound=$(ready_addr "$work/b.log" inbound)
b_admin=$(ready_addr "$work/b.log" admin)

config a "127.0.0.1:$app_port" "[{host: b, address: \"$b_inbound\", identity: \"spiffe://check.mesh/ns/ci/sa/b\"}]"
"$usher" run --config "$work/a/usher.yaml" >"$work/a.log" 2>&1 &
pids+=($!)
wait_line "$work/a.log" '"usher ready"'
a_outbound=$(ready_addr "$work/a.log" outbound)
a_admin=$(ready_addr "$work/a.log" admin)
echo "a: outbound $a_outbound, admin $a_admin; b: inbound $b_inbound, admin $b_admin"

wait_line "$work/app.log" 'Serving HTTP'
request() { # HOST PATH EXPECTED_STATUS
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" "http://$a_outbound$2")
    [ "$got" = "$3" ] || fail "GET $1$2 through the pair: $got, expected $3"
}
for _ in 1 2 3; do request b / 200; done
request b /missing 404
request nowhere / 404

# Scrapes ADMIN with the given Accept header (none when empty) into
# FILE, and checks the Content-Type.
scrape() { # ADMIN ACCEPT FILE WANTED_CONTENT_TYPE
    local args=(-sS -D "$3.headers" -o "$3")
    [ -n "$2" ] && args+=(-H "Accept: $2")
    curl "${args[@]}" "http://$1/metrics"
    local ct
    ct=$(grep -i '^content-type:' "$3.headers" | cut -d' ' -f2- | tr -d '\r')
    [ "$ct" = "$4" ] || fail "/metrics of $1 (Accept: ${2:-none}): Content-Type '$ct', expected '$4'"
}

text_ct='text/plain; version=0.0.4; charset=utf-8'
om_ct='application/openmetrics-text; version=1.0.0; charset=utf-8'
om_accept='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

echo "== promtool check metrics (Prometheus text format 0.0.4)"
for side in a b; do
    admin_var="${side}_admin"
    admin=${!admin_var}
    scrape "$admin" "" "$work/$side.prom" "$text_ct"
    scrape "$admin" "$om_accept" "$work/$side.om" "$om_ct"
    [ "$(tail -n1 "$work/$side.om")" = "# EOF" ] || fail "$side: the OpenMetrics text does not end with # EOF"
    ! grep -qE '^# (UNIT|EOF)|^# TYPE [^ ]+ info$' "$work/$side.prom" \
        || fail "$side: OpenMetrics-only lines in the 0.0.4 text"
    grep -q '^# TYPE usher_requests_total counter$' "$work/$side.prom" \
        || fail "$side: no '# TYPE usher_requests_total counter' in the 0.0.4 text"
    echo "-- $side: promtool check metrics < $side.prom"
    if ! promtool check metrics <"$work/$side.prom"; then
        cat "$work/$side.prom" >&2
        fail "promtool check metrics rejected $side's /metrics"
    fi
    echo "   promtool: no problems"
done

echo "== a Prometheus server scrapes both sidecars (OpenMetrics)"
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: usher
    static_configs: [{targets: ["$a_admin", "$b_admin"]}]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

api="http://127.0.0.1:$prom_port/api/v1"
# Waits (30 s at most) until every target has been scraped at least
# twice, then checks them.
check_targets() {
    python3 - "$api" <<'EOF'
import json, sys, time, urllib.parse, urllib.request

api = sys.argv[1]

def get(path, **params):
    url = api + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]

deadline = time.time() + 30
targets = []
while time.time() < deadline:
    try:
        targets = get("/targets")["activeTargets"]
        up = [t for t in targets if t["health"] == "up"]
        if len(targets) == 2 and len(up) == 2 and get("/query", query="count(up == 1) == 2")["result"]:
            # A second round, so that the series below are in.
            time.sleep(2)
            break
    except OSError:
        pass
    time.sleep(0.5)
problems = [f'{t["scrapeUrl"]}: health {t["health"]}, error {t["lastError"]!r}'
            for t in targets if t["health"] != "up" or t["lastError"]]
if len(targets) != 2 or problems:
    sys.exit("Prometheus could not scrape usher: " + ("; ".join(problems) or repr(targets)))
for t in targets:
    print(f'{t["scrapeUrl"]}: {t["health"]}, last scrape {t["lastScrapeDuration"]:.4f}s')

def series(query):
    return get("/query", query=query)["result"]

checks = {
    'usher_requests_total{direction="outbound",code="200",classification="success"}': 3,
    'usher_requests_total{direction="inbound",code="200",classification="success"}': 3,
    'usher_requests_total{direction="inbound",code="404"}': 1,
}
for query, want in checks.items():
    got = sum(float(s["value"][1]) for s in series(query))
    if got != want:
        sys.exit(f"{query}: {got}, expected {want}")
for name in ["usher_build_info", "usher_request_duration_seconds_bucket",
             "process_cpu_seconds_total", "process_resident_memory_bytes",
             "process_open_fds", "process_start_time_seconds"]:
    if not series(name):
        sys.exit(f"no {name} series in Prometheus")
types = {}
for t in get("/targets/metadata", match_target='{job="usher"}'):
    types.setdefault(t["metric"], t["type"])
want = {"usher_requests": "counter", "usher_build": "info",
        "usher_request_duration_seconds": "histogram", "usher_open_connections": "gauge",
        "process_cpu_seconds": "counter"}
wrong = {m: types.get(m) for m, ty in want.items() if types.get(m) != ty}
if wrong:
    sys.exit(f"metadata types as Prometheus read them: {wrong}, expected {want}")
print("types as Prometheus read them:", {m: types[m] for m in want})
EOF
}
if ! check_targets; then
    echo "--- prometheus log (tail):" >&2
    tail -n 20 "$work/prometheus.log" >&2 || true
    fail "Prometheus scrape check"
fi

echo "check-metrics: OK"
