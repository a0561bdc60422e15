#!/usr/bin/env bash
# Runs the cargo-fuzz targets for a bounded time each. Not part of CI.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 s per target, every target, one after the other. Exits
# non-zero if any target found a crash (or a timeout / out-of-memory input),
# naming the artifact and how to reproduce and minimise it.
#
# Environment:
#   FUZZ_SANITIZER  none (default) | address | ... (cargo fuzz -s); on a
#                   stable toolchain a sanitizer needs RUSTC_BOOTSTRAP=1,
#                   which this script then sets.
#   FUZZ_TIMEOUT    libFuzzer's per-input timeout in seconds (default 10)
#   FUZZ_RSS_MB     libFuzzer's memory limit in MiB (default 2048)
#   CARGO_TARGET_DIR, CARGO_BUILD_JOBS are passed on to cargo as usual.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
cd "$ROOT"

ALL_TARGETS=(spiffe_id trace_context usher_yaml xfcc jwt jwt_authn path)

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    echo "targets: ${ALL_TARGETS[*]}" >&2
    exit 2
fi
shift || true
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
for t in "${TARGETS[@]}"; do
    if [ ! -f "$FUZZ_DIR/fuzz_targets/$t.rs" ]; then
        echo "unknown target: $t (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

SANITIZER="${FUZZ_SANITIZER:-none}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
RSS_MB="${FUZZ_RSS_MB:-2048}"

# cargo-fuzz, from crates.io when missing.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Sanitizers use -Zsanitizer, which only nightly accepts; RUSTC_BOOTSTRAP=1
# lets the stable compiler take it. With `-s none` stable needs nothing.
if [ "$SANITIZER" != none ] && ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# The same dependency versions as the main workspace: start from its lock
# file (fuzz/Cargo.lock is not tracked; cargo adds libfuzzer-sys to it).
if [ ! -f "$FUZZ_DIR/Cargo.lock" ]; then
    cp "$ROOT/Cargo.lock" "$FUZZ_DIR/Cargo.lock"
fi

# Seed corpora: a few valid inputs per target (fuzz/corpus is not tracked).
seed() { # seed TARGET NAME CONTENT (printf format)
    mkdir -p "$FUZZ_DIR/corpus/$1"
    # shellcheck disable=SC2059
    printf "$3" >"$FUZZ_DIR/corpus/$1/seed-$2"
}
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
SPAN=00f067aa0ba902b7
seed spiffe_id workload 'spiffe://example.org/ns/default/sa/web'
seed spiffe_id trust-domain 'spiffe://mesh.local'
seed spiffe_id chars 'spiffe://td_1.x-y/A-Z_a.z-09'
seed spiffe_id bad-upper 'spiffe://Example.org/web'
seed trace_context w3c "000-$TRACE-$SPAN-01\n1rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
seed trace_context w3c-future "0cc-$TRACE-$SPAN-00-extra"
seed trace_context b3-single "2$TRACE-$SPAN-1-05e3ac9a4f6e3b90"
seed trace_context b3-single-64 "2${TRACE:16}-$SPAN-d"
seed trace_context b3-multi "3$TRACE\n4$SPAN\n505e3ac9a4f6e3b90\n60\n71"
seed trace_context b3-multi-64 "3${TRACE:16}\n4$SPAN\n6true"
seed trace_context tracestate-alone '1rojo=1\n20'
mkdir -p "$FUZZ_DIR/corpus/usher_yaml"
cp "$ROOT/examples/usher.yaml" "$FUZZ_DIR/corpus/usher_yaml/seed-example"
seed usher_yaml minimal 'service: web\nidentity:\n  cert: c.pem\n  key: k.pem\n  bundle: b.pem\ninbound:\n  app: 127.0.0.1:8080\n'
seed usher_yaml ca 'service: web\nidentity:\n  ca:\n    url: https://ca:8443\n    bundle: ca.pem\n    token_file: /run/token\n    spiffe_id: spiffe://mesh.local/ns/a/sa/web\n    renew_at: 0.7\ninbound:\n  listen: 0.0.0.0:15006\n  app: 127.0.0.1:8080\n  app_connect_timeout: 3s\noutbound:\n  routes:\n    - host: payments\n      address: payments:15006\n      identity: spiffe://mesh.local/ns/a/sa/payments\npolicy:\n  files: [authz.rego]\n  eval_timeout: 50ms\n'
seed xfcc spoofed '0By=spiffe://mesh.local/a;URI=spiffe://mesh.local/b\n9Hash=abc;URI=spiffe://evil/x\nhost:payments\nx-request-id:42\n'
seed xfcc connection '1keep-alive, x-custom, Upgrade, TE\n2timeout=5\n8drop me\n6trailers, deflate;q=0.5\n5websocket\n!\n'
seed xfcc hop-by-hop '3close\n4chunked\n6gzip\nconnection:x-forwarded-client-cert, connection\n0x\n'
seed jwt hs256 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzcGlmZmU6Ly9tZXNoLmxvY2FsL25zL3Nob3Avc2Evb3JkZXJzIiwiaXNzIjoidXNoZXIiLCJhdWQiOiJwYXltZW50cyIsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNjAwMDAwMDAwfQ.RDu9dUhIcxDO7sjYjKbGkHx-lvyMiwZdWJIEc0P9OOs\nsecret'
seed jwt nested 'eyJhbGciOiJIUzI1NiIsImN0eSI6IkpXVCJ9.ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0lzSW10cFpDSTZJbXN4SW4wLmV5SnpkV0lpT2lKaGJHbGpaU0lzSW1GMVpDSTZXeUpoSWl3aVlpSmRmUS5pLWtodE80eTVXMHN5cGUzRHpiV1l0STVPQk8teFBjUjFQbWZLaW9SMlNZ.WEN1Nu1jlZyZIwoHLCqd36hRrvXUo2gMTaaBcULXlA8\nsecret'
# jwt_authn: a first byte selects token (even) or JWKS document (odd).
seed jwt_authn es256-token '\000eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjIn0.eyJpc3MiOiJodHRwczovL2xvZ2luLnRlc3QiLCJhdWQiOiJvcmRlcnMiLCJleHAiOjQxMDI0NDQ4MDB9.AAAA'
seed jwt_authn none-token '\000eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2xvZ2luLnRlc3QifQ.'
seed jwt_authn jwks '\001{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
seed jwt crit 'eyJhbGciOiJSUzI1NiIsImNyaXQiOlsiZXhwIl0sImV4cCI6MX0.eyJzdWIiOiJ4In0.'

echo "== building (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER"

mkdir -p "$FUZZ_DIR/logs"
FAILED=()
SUMMARY=()
for t in "${TARGETS[@]}"; do
    log="$FUZZ_DIR/logs/$t.log"
    mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t"
    echo "== $t: ${SECONDS_PER_TARGET}s (log: $log)"
    set +e
    cargo fuzz run -s "$SANITIZER" "$t" "$FUZZ_DIR/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" \
        -rss_limit_mb="$RSS_MB" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    corpus=$(find "$FUZZ_DIR/corpus/$t" -type f | wc -l)
    line="$t: ${execs:-?} execs, ${rate:-?} execs/s, corpus $corpus files"
    if [ "$rc" -ne 0 ]; then
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/^Test unit written to //' || true)
        echo "!! $t failed (exit $rc); last lines of $log:"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 || tail -20 "$log"
        if [ -n "$artifact" ]; then
            rel="${artifact#"$ROOT"/}"
            echo "   artifact: $rel"
            echo "   reproduce: cargo fuzz run -s $SANITIZER $t $rel"
            echo "   minimise:  cargo fuzz tmin -s $SANITIZER $t $rel"
            line="$line, FAILED: $rel"
        else
            line="$line, FAILED (exit $rc, no artifact; see $log)"
        fi
        FAILED+=("$t")
    fi
    SUMMARY+=("$line")
done

echo "== summary (${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER)"
printf '%s\n' "${SUMMARY[@]}"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "crashes in: ${FAILED[*]} (run the reproduce commands above from $ROOT)"
    exit 1
fi
echo "no crashes"
