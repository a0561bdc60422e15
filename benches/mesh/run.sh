#!/usr/bin/env bash
# Mesh load benchmark: the same HTTP/1.1 load through three chains,
#   direct  wrk → backend
#   usher   wrk → usher (outbound) → mTLS → usher (inbound) → backend
#   nginx   wrk → nginx            → mTLS → nginx            → backend
# measured in one run, repeated R times; prints a table and writes it to
# BENCHMARKS.md. Method: benches/mesh/README.md. Run `run.sh --help`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_PY=(python3 "$HERE/bench.py")

usage() {
    cat <<'EOF'
Usage: benches/mesh/run.sh [options]

Options (each also settable by the environment variable in brackets):
  -d, --duration SEC     seconds per measurement [D, default 10]
  -r, --repeat N         repetitions of the whole set [R, default 3]
  --chains LIST          comma-separated subset of direct,usher,nginx, or
                         "none" [CHAINS, default direct,usher,nginx]
  --scale                also run usher at 1, 64 and 512 connections and with
                         100 routes [SCALE=1; SCALE_CONNS="1 64 512",
                         SCALE_ROUTES=100]
  --conns N              connections of the normal cases [CONNS, default 16]
  --rate N               fixed rate of the latency run, req/s; capped at half
                         the case's measured req/s [RATE, default 2000]
  --warmup SEC           unmeasured load before each case [WARMUP, default 1]
  --policy               also run the usher chain with a Rego policy on the
                         callee (benches/mesh/policy/: 1,000 principals, 100
                         prefixes) [POLICY=1]
  --tracing              also run the usher chain with tracing on (OTLP/gRPC
                         to a local sink, sampling 1.0) and with the access
                         log on [TRACING=1]; with --policy too, also
                         usher-full: the policy (decision log at its
                         default) and tracing together
  --post-quantum         let usher offer X25519MLKEM768 (its default); by
                         default the bench sets tls.post_quantum: false so
                         that usher and nginx both use X25519 [POST_QUANTUM]
  --usher-extra FILE     YAML appended to both usher configs [USHER_EXTRA];
                         USHER_EXTRA_OUT / USHER_EXTRA_IN: caller / callee only
  --label TEXT           title of the BENCHMARKS.md section [LABEL]
  --out FILE             where to write the section, "-" for nowhere
                         [OUT, default BENCHMARKS.md at the repo root]
  --section NAME         marker name of the section [SECTION, default mesh,
                         or mesh-scale with --scale]
  --keep-tmp             keep the temp dir (configs, logs, wrk output) [KEEP_TMP=1]
  -h, --help

Examples:
  benches/mesh/run.sh                              # the full run, ~4 min
  D=3 R=1 benches/mesh/run.sh --label "trial run, D=3s"
  benches/mesh/run.sh --chains usher --scale       # usher at 1/16/64/512 conns, 100 routes
  benches/mesh/run.sh --chains usher --usher-extra my-policy.yaml --out -
EOF
}

D=${D:-10}
R=${R:-3}
CHAINS=${CHAINS:-direct,usher,nginx}
SCALE=${SCALE:-0}
SCALE_CONNS=${SCALE_CONNS:-"1 64 512"}
SCALE_ROUTES=${SCALE_ROUTES:-100}
CONNS=${CONNS:-16}
RATE=${RATE:-2000}
WARMUP=${WARMUP:-1}
POST_QUANTUM=${POST_QUANTUM:-false}
POLICY=${POLICY:-0}
TRACING=${TRACING:-0}
USHER_EXTRA=${USHER_EXTRA:-}
USHER_EXTRA_OUT=${USHER_EXTRA_OUT:-}
USHER_EXTRA_IN=${USHER_EXTRA_IN:-}
USHER_BIN=${USHER_BIN:-$ROOT/target/release/usher}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
LABEL=${LABEL:-}
SECTION=${SECTION:-}
KEEP_TMP=${KEEP_TMP:-0}

while [ $# -gt 0 ]; do
    case "$1" in
        -d|--duration) D=$2; shift 2 ;;
        -r|--repeat) R=$2; shift 2 ;;
        --chains) CHAINS=$2; shift 2 ;;
        --scale) SCALE=1; shift ;;
        --conns) CONNS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --post-quantum) POST_QUANTUM=true; shift ;;
        --policy) POLICY=1; shift ;;
        --tracing) TRACING=1; shift ;;
        --usher-extra) USHER_EXTRA=$2; shift 2 ;;
        --label) LABEL=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --section) SECTION=$2; shift 2 ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "== $*"; }

for v in D R CONNS RATE WARMUP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[ "$D" -ge 1 ] && [ "$R" -ge 1 ] && [ "$CONNS" -ge 1 ] && [ "$RATE" -ge 10 ] \
    || die "need D >= 1, R >= 1, CONNS >= 1, RATE >= 10"
case "$POST_QUANTUM" in true|false) ;; 1) POST_QUANTUM=true ;; 0) POST_QUANTUM=false ;;
    *) die "POST_QUANTUM must be true or false" ;; esac
case "$SCALE" in 0|1) ;; *) die "SCALE must be 0 or 1" ;; esac
for f in "$USHER_EXTRA" "$USHER_EXTRA_OUT" "$USHER_EXTRA_IN"; do
    [ -z "$f" ] || [ -r "$f" ] || die "extra usher config $f is not readable"
done
[ -n "$SECTION" ] || { [ "$SCALE" = 1 ] && SECTION=mesh-scale || SECTION=mesh; }
[ -n "$LABEL" ] || LABEL="D=${D}s, R=${R}"
[ "$OUT" = - ] || [ "$OUT" = none ] || OUT=$(realpath -m "$OUT")

# The cases: "name chain connections routes".
CASES=()
if [ "$CHAINS" != none ]; then
    IFS=, read -r -a chain_list <<<"$CHAINS"
    for c in "${chain_list[@]}"; do
        case "$c" in direct|usher|nginx) CASES+=("$c $c $CONNS 1") ;;
            *) die "unknown chain '$c' (direct, usher, nginx)" ;; esac
    done
fi
if [ "$POLICY" = 1 ]; then CASES+=("usher-policy usher-policy $CONNS 1"); fi
if [ "$TRACING" = 1 ]; then
    CASES+=("usher-tracing usher-tracing $CONNS 1" "usher-accesslog usher-accesslog $CONNS 1")
fi
# Everything on at once, with the policy's default decision log.
if [ "$POLICY" = 1 ] && [ "$TRACING" = 1 ]; then CASES+=("usher-full usher-full $CONNS 1"); fi
if [ "$SCALE" = 1 ]; then
    for n in $SCALE_CONNS; do CASES+=("usher-c$n usher $n 1"); done
    CASES+=("usher-r$SCALE_ROUTES usher $CONNS $SCALE_ROUTES")
fi
[ ${#CASES[@]} -gt 0 ] || die "nothing to run (CHAINS=none without --scale)"
need_nginx=0
for c in "${CASES[@]}"; do
    if [[ $c == *" nginx "* ]]; then need_nginx=1; fi
done

# ------------------------------------------------------------------ set-up

install_tools() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v openssl >/dev/null || missing+=(openssl)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]} from Debian packages"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
    # A package's default site (port 80) is not used; the bench runs its own.
}
install_tools

if [ ! -x "$USHER_BIN" ]; then
    log "building usher (release)"
    (cd "$ROOT" && cargo build --release --locked -p usher-cli)
fi

# 512 connections through two proxies needs a few thousand descriptors.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 || die "cannot raise the open-file limit to 4096 (ulimit -Hn is $(ulimit -Hn))"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/usher-mesh-bench.XXXXXX")
PIDS=()

stop_pid() {
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [ "$rc" != 0 ]; then
        echo "run.sh: FAILED (exit $rc); last lines of the logs:" >&2
        find "$TMP" -name '*.log' -size +0 2>/dev/null | sort | while read -r f; do
            echo "--- ${f#"$TMP"/}" >&2; tail -n 5 "$f" >&2
        done
    fi
    if [ "$KEEP_TMP" = 1 ]; then echo "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NGINX_USER_LINE=""
[ "$(id -u)" = 0 ] && NGINX_USER_LINE="user $(id -un) $(id -gn);"

# start_nginx NAME TEMPLATE PORT [KEY=VALUE...]: sets LAST_PID.
start_nginx() {
    local name=$1 tmpl=$2 port=$3; shift 3
    local dir=$TMP/$name
    mkdir -p "$dir/tmp"
    local subs=(-e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@USER_LINE@|$NGINX_USER_LINE|g")
    local kv
    for kv in "$@"; do subs+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${subs[@]}" "$HERE/nginx/common-head.conf" "$HERE/nginx/$tmpl" >"$dir/nginx.conf"
    if grep -q '@[A-Z_]*@' "$dir/nginx.conf"; then
        die "unfilled placeholder in $dir/nginx.conf: $(grep -o '@[A-Z_]*@' "$dir/nginx.conf" | head -1)"
    fi
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/test.log" 2>&1 \
        || { cat "$dir/test.log" >&2; die "nginx config $name is invalid"; }
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    "${BENCH_PY[@]}" wait-tcp "127.0.0.1:$port" --pid "$LAST_PID" --timeout 10
}

# write_usher_config FILE SERVICE CERTS APP ROUTES_YAML EXTRA...
write_usher_config() {
    local file=$1 service=$2 certs=$3 app=$4 routes=$5; shift 5
    local extras=() f
    for f in "$@"; do [ -n "$f" ] && extras+=("$f"); done
    {
        echo "# written by benches/mesh/run.sh"
        echo "service: $service"
        echo "identity:"
        echo "  cert: $certs/cert.pem"
        echo "  key: $certs/key.pem"
        echo "  bundle: $certs/bundle.pem"
        echo "inbound:"
        echo "  listen: 127.0.0.1:0"
        echo "  app: $app"
        echo "outbound:"
        echo "  listen: 127.0.0.1:0"
        if [ -n "$routes" ]; then echo "  routes:"; printf '%s' "$routes"; else echo "  routes: []"; fi
        echo "admin:"
        echo "  listen: 127.0.0.1:0"
        if [ ${#extras[@]} -eq 0 ] || ! grep -qE '^tls:' "${extras[@]}"; then
            echo "tls:"
            echo "  post_quantum: $POST_QUANTUM"
        fi
        # nginx runs with access_log off; so does usher unless a case says.
        if [ ${#extras[@]} -eq 0 ] || ! grep -qE '^telemetry:' "${extras[@]}"; then
            echo "telemetry:"
            echo "  access_log: false"
        fi
        if [ ${#extras[@]} -eq 0 ] || ! grep -qE '^shutdown:' "${extras[@]}"; then
            echo "shutdown:"
            echo "  drain_timeout: 1s"
        fi
        for f in "${extras[@]+"${extras[@]}"}"; do echo "# from $f"; cat "$f"; echo; done
    } >"$file"
}

# start_usher NAME CONFIG: sets LAST_PID and USHER_ADDRS ("inbound outbound admin").
start_usher() {
    local name=$1 cfg=$2
    "$USHER_BIN" run --config "$cfg" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    USHER_ADDRS=$("${BENCH_PY[@]}" wait-usher "$TMP/$name.log" "$LAST_PID" --timeout 10)
}

# ------------------------------------------------------------ certificates

TD=bench.mesh
ID_A=spiffe://$TD/ns/bench/sa/a
ID_B=spiffe://$TD/ns/bench/sa/b
"$USHER_BIN" ca init --trust-domain "$TD" --dir "$TMP/ca" >/dev/null
# usher's certificates carry only the SPIFFE ID (a URI SAN); nginx verifies
# peers by DNS name, so its certificates add one (same CA, same key type).
"$USHER_BIN" ca issue --ca-dir "$TMP/ca" --spiffe-id "$ID_A" --out "$TMP/certs/usher-a" --ttl 24h >/dev/null
"$USHER_BIN" ca issue --ca-dir "$TMP/ca" --spiffe-id "$ID_B" --out "$TMP/certs/usher-b" --ttl 24h >/dev/null
"$USHER_BIN" ca issue --ca-dir "$TMP/ca" --spiffe-id "$ID_A" --dns a.$TD --out "$TMP/certs/nginx-a" --ttl 24h >/dev/null
"$USHER_BIN" ca issue --ca-dir "$TMP/ca" --spiffe-id "$ID_B" --dns b.$TD --out "$TMP/certs/nginx-b" --ttl 24h >/dev/null

# ------------------------------------------------------------------ backend

SINK=""
if [ "$TRACING" = 1 ]; then
    SINK_BIN=${SINK_BIN:-$ROOT/target/release/otlp-sink}
    if [ ! -x "$SINK_BIN" ]; then
        log "building the OTLP sink (cargo build --release --locked -p usher-benches --bin otlp-sink)"
        (cd "$ROOT" && cargo build --release --locked -q -p usher-benches --bin otlp-sink)
    fi
    "$SINK_BIN" >"$TMP/otlp-sink.log" 2>&1 &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    for _ in $(seq 100); do
        SINK=$(sed -n 's/^otlp-sink listening on //p' "$TMP/otlp-sink.log")
        [ -n "$SINK" ] && break
        kill -0 "$SINK_PID" 2>/dev/null || die "the OTLP sink exited: $(cat "$TMP/otlp-sink.log")"
        sleep 0.1
    done
    [ -n "$SINK" ] || die "the OTLP sink did not start within 10 s"
    log "OTLP sink on $SINK (pid $SINK_PID)"
fi

BACKEND_PORT=$("${BENCH_PY[@]}" freeport 1)
start_nginx backend backend.conf "$BACKEND_PORT"
BACKEND=127.0.0.1:$BACKEND_PORT
log "backend nginx on $BACKEND (pid $LAST_PID)"

# ------------------------------------------------------------------- chains

# Each start_* sets TARGET (host:port wrk talks to) and PROCS ("out=PID in=PID").
CHAIN_PIDS=()

start_direct() {
    TARGET=$BACKEND
    PROCS=()
    CHAIN_PIDS=()
}

start_usher_chain() { # ROUTES DIR [EXTRA_IN [EXTRA_OUT]]
    local routes=$1 dir=$2 case_in=${3:-} case_out=${4:-}
    mkdir -p "$dir"
    write_usher_config "$dir/in.yaml" bench-b "$TMP/certs/usher-b" "$BACKEND" "" \
        "$USHER_EXTRA" "$USHER_EXTRA_IN" "$case_in"
    start_usher "${dir#"$TMP"/}/in" "$dir/in.yaml"
    local pid_in=$LAST_PID in_addr
    read -r in_addr _ _ <<<"$USHER_ADDRS"
    # 99 dummy routes (to a closed port, never used) before the real one, so a
    # scan of the table would pay for all of them.
    local yaml="" i
    for ((i = 1; i < routes; i++)); do
        yaml+="    - host: dummy-$i.$TD"$'\n'
        yaml+="      address: 127.0.0.1:9"$'\n'
        yaml+="      identity: spiffe://$TD/ns/bench/sa/dummy-$i"$'\n'
    done
    yaml+="    - host: b"$'\n'"      address: $in_addr"$'\n'"      identity: $ID_B"$'\n'
    # The caller's own app is never called in this bench; point it at the backend.
    write_usher_config "$dir/out.yaml" bench-a "$TMP/certs/usher-a" "$BACKEND" "$yaml" \
        "$USHER_EXTRA" "$USHER_EXTRA_OUT" "$case_out"
    start_usher "${dir#"$TMP"/}/out" "$dir/out.yaml"
    local pid_out=$LAST_PID out_addr
    read -r _ out_addr _ <<<"$USHER_ADDRS"
    TARGET=$out_addr
    PROCS=("out=$pid_out" "in=$pid_in")
    CHAIN_PIDS=("$pid_out" "$pid_in")
}

KX_NGINX=""
start_nginx_chain() {
    local dir=$1 out_port in_port ports
    ports=$("${BENCH_PY[@]}" freeport 2)
    read -r out_port in_port <<<"$ports"
    start_nginx "${dir#"$TMP"/}/in" mesh-in.conf "$in_port" \
        "CERTS=$TMP/certs/nginx-b" "APP_PORT=$BACKEND_PORT"
    local pid_in=$LAST_PID
    start_nginx "${dir#"$TMP"/}/out" mesh-out.conf "$out_port" \
        "CERTS=$TMP/certs/nginx-a" "PEER_PORT=$in_port" "PEER_NAME=b.$TD"
    local pid_out=$LAST_PID
    TARGET=127.0.0.1:$out_port
    PROCS=("out=$pid_out" "in=$pid_in")
    CHAIN_PIDS=("$pid_out" "$pid_in")
    if [ -z "$KX_NGINX" ]; then
        # What nginx-in picks for an OpenSSL client with default groups, i.e.
        # for nginx-out: the key exchange of the nginx chain.
        KX_NGINX=$(openssl s_client -connect "127.0.0.1:$in_port" -tls1_3 \
            -cert "$TMP/certs/nginx-a/cert.pem" -key "$TMP/certs/nginx-a/key.pem" \
            -CAfile "$TMP/certs/nginx-a/bundle.pem" -servername "b.$TD" </dev/null 2>/dev/null \
            | sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' | head -1) || true
        [ -n "$KX_NGINX" ] || KX_NGINX="unknown"
    fi
}

stop_chain() {
    local p
    for p in "${CHAIN_PIDS[@]+"${CHAIN_PIDS[@]}"}"; do stop_pid "$p"; done
    CHAIN_PIDS=()
}

# check_chain WHAT [SIZE_FILE]: fails loudly unless the chain answers 200 "ok";
# writes the size of that response (headers + body) to SIZE_FILE, which the
# wrk checks compare with bytes read ÷ requests.
check_chain() {
    local what=$1 size_file=${2:-} body out code size_h size_b
    out=$(curl -sS -o "$TMP/body" --max-time 5 -H 'Host: b' \
        -w '%{http_code} %{size_header} %{size_download}' "http://$TARGET/") \
        || die "$what: curl http://$TARGET/ failed"
    read -r code size_h size_b <<<"$out"
    body=$(cat "$TMP/body")
    [ "$code" = 200 ] && [ "$body" = ok ] \
        || die "$what: expected 200 \"ok\" from http://$TARGET/ (Host: b), got $code \"$body\""
    if [ -n "$size_file" ]; then echo $((size_h + size_b)) >"$size_file"; fi
}

procstat() { # procstat FILE: /proc figures of the chain's proxies
    if [ ${#PROCS[@]} -gt 0 ]; then "${BENCH_PY[@]}" procstat "${PROCS[@]}" >"$1"; fi
}

run_wrk() { # run_wrk OUT CONNS SECONDS wrk.lua-args...
    local out=$1 conns=$2 secs=$3; shift 3
    wrk -t 1 -c "$conns" -d "${secs}s" --timeout 5s -H 'Host: b' \
        -s "$HERE/wrk.lua" "http://$TARGET/" -- "$@" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed ($out)"; }
}

RESULTS=$TMP/results.jsonl
: >"$RESULTS"

run_case() {
    local name=$1 chain=$2 conns=$3 routes=$4 rep=$5
    local dir=$TMP/rep$rep/$name
    mkdir -p "$dir"
    case "$chain" in
        direct) start_direct ;;
        usher) start_usher_chain "$routes" "$dir" ;;
        usher-policy)
            python3 "$HERE/policy/gen_data.py" "$ID_A" "$dir/roles.json"
            printf 'policy:\n  files: [%s]\n  data: [%s]\n  decision_log:\n    allow_sample_rate: 0.0\n' \
                "$HERE/policy/authz.rego" "$dir/roles.json" >"$dir/policy.yaml"
            start_usher_chain "$routes" "$dir" "$dir/policy.yaml" ;;
        usher-tracing)
            printf 'telemetry:\n  otlp: {endpoint: "http://%s", protocol: grpc}\n  sampling: 1.0\n  access_log: false\n' \
                "$SINK" >"$dir/tracing.yaml"
            start_usher_chain "$routes" "$dir" "$dir/tracing.yaml" "$dir/tracing.yaml" ;;
        usher-full)
            python3 "$HERE/policy/gen_data.py" "$ID_A" "$dir/roles.json"
            printf 'telemetry:\n  otlp: {endpoint: "http://%s", protocol: grpc}\n  sampling: 1.0\n  access_log: false\n' \
                "$SINK" >"$dir/tracing.yaml"
            { cat "$dir/tracing.yaml"
              printf 'policy:\n  files: [%s]\n  data: [%s]\n' "$HERE/policy/authz.rego" "$dir/roles.json"
            } >"$dir/full.yaml"
            start_usher_chain "$routes" "$dir" "$dir/full.yaml" "$dir/tracing.yaml" ;;
        usher-accesslog)
            printf 'telemetry:\n  access_log: true\n' >"$dir/accesslog.yaml"
            start_usher_chain "$routes" "$dir" "$dir/accesslog.yaml" "$dir/accesslog.yaml" ;;
        nginx) start_nginx_chain "$dir" ;;
    esac
    check_chain "$name" "$dir/expect_bytes"
    procstat "$dir/ps_idle.json"
    if [ "$WARMUP" -gt 0 ]; then
        # Unmeasured; its response hook checks that every status is 2xx.
        run_wrk "$dir/warmup.out" "$conns" "$WARMUP" check
        "${BENCH_PY[@]}" check-wrk "$dir/warmup.out" "$name rep $rep warm-up" \
            --expect-bytes "$(cat "$dir/expect_bytes")"
    fi
    procstat "$dir/ps_before.json"
    run_wrk "$dir/sat.out" "$conns" "$D" sat
    procstat "$dir/ps_after.json"
    local rate
    rate=$("${BENCH_PY[@]}" pick-rate "$dir/sat.out" "$RATE")
    run_wrk "$dir/rate.out" "$conns" "$D" rate "$rate" 1
    procstat "$dir/ps_end.json"
    check_chain "$name (after load)"
    stop_chain
    "${BENCH_PY[@]}" record --dir "$dir" --case "$name" --chain "$chain" --conns "$conns" \
        --routes "$routes" --rep "$rep" --rate "$rate" --results "$RESULTS"
}

est=$(( R * ${#CASES[@]} * (WARMUP + 2 * D + 1) ))
log "${#CASES[@]} case(s) × $R repetition(s), D=${D}s: about ${est}s"
for ((rep = 1; rep <= R; rep++)); do
    log "repetition $rep/$R"
    for c in "${CASES[@]}"; do
        read -r name chain conns routes <<<"$c"
        run_case "$name" "$chain" "$conns" "$routes" "$rep"
    done
done

stop_pid "${PIDS[0]}" # the backend

# ------------------------------------------------------------------- report

if [ "$POST_QUANTUM" = true ]; then
    kx_usher="X25519MLKEM768 (usher's default, tls.post_quantum: true)"
else
    kx_usher="X25519 (tls.post_quantum: false, set by the bench; usher's default is X25519MLKEM768)"
fi
extras=()
for f in "$USHER_EXTRA" "$USHER_EXTRA_OUT" "$USHER_EXTRA_IN"; do
    if [ -n "$f" ]; then extras+=("$f"); fi
done
if [ ${#extras[@]} -gt 0 ] && grep -qE '^tls:' "${extras[@]}"; then
    kx_usher="as set by the extra config's tls section"
fi
MESH_KX="usher $kx_usher"
MESH_WORKERS="default (runtime.workers: 1)"
if [ ${#extras[@]} -gt 0 ] && grep -qE '^runtime:' "${extras[@]}"; then
    MESH_WORKERS="as set by the extra config ($(grep -hA1 '^runtime:' "${extras[@]}" | tr -s ' \n' ' '))"
fi
[ "$need_nginx" = 1 ] && MESH_KX+="; nginx $KX_NGINX (OpenSSL's default groups, as negotiated)"
extra_desc=""
[ -n "$USHER_EXTRA" ] && extra_desc+="both: \`$(basename "$USHER_EXTRA")\` "
[ -n "$USHER_EXTRA_OUT" ] && extra_desc+="caller: \`$(basename "$USHER_EXTRA_OUT")\` "
[ -n "$USHER_EXTRA_IN" ] && extra_desc+="callee: \`$(basename "$USHER_EXTRA_IN")\` "

git_desc=""
if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    git_desc="commit $(git -C "$ROOT" rev-parse --short HEAD)"
    [ -z "$(git -C "$ROOT" status --porcelain -- proxy ca policy Cargo.toml Cargo.lock 2>/dev/null)" ] \
        || git_desc+=" + uncommitted changes"
fi

cmd="D=$D R=$R"
[ "$CHAINS" = direct,usher,nginx ] || cmd+=" CHAINS=$CHAINS"
[ "$CONNS" = 16 ] || cmd+=" CONNS=$CONNS"
[ "$RATE" = 2000 ] || cmd+=" RATE=$RATE"
[ "$WARMUP" = 1 ] || cmd+=" WARMUP=$WARMUP"
[ "$POST_QUANTUM" = false ] || cmd+=" POST_QUANTUM=true"
cmd+=" benches/mesh/run.sh"
[ "$SCALE" = 1 ] && cmd+=" --scale"
[ "$POLICY" = 1 ] && cmd+=" --policy"
[ "$TRACING" = 1 ] && cmd+=" --tracing"

MESH_DURATION=$D MESH_WARMUP=$WARMUP MESH_RATE=$RATE MESH_KX=$MESH_KX MESH_GIT=$git_desc \
MESH_EXTRA_DESC=${extra_desc% } MESH_COMMAND=$cmd MESH_WORKERS=$MESH_WORKERS \
    "${BENCH_PY[@]}" report --results "$RESULTS" --usher "$USHER_BIN" --label "$LABEL" \
    --section "$SECTION" --out "$OUT"
