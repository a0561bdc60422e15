#!/usr/bin/env bash
# `usher inject` output against the real Kubernetes schemas
# (kubernetes-validate --strict: unknown fields are errors), for the first
# Kubernetes version with native sidecars on by default and the latest the
# tool knows; and injecting twice must change nothing.
# Needs: kubernetes-validate (pip), a built usher (cargo run builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
usher() { cargo run --locked -q -- "$@"; }
usher inject -f examples/kubernetes/orders-app.yaml >"$tmp/injected.yaml"
for version in 1.29.0 1.37.0; do
    kubernetes-validate --strict --quiet -k "$version" "$tmp/injected.yaml"
done
usher inject -f "$tmp/injected.yaml" >"$tmp/twice.yaml"
diff -u "$tmp/injected.yaml" "$tmp/twice.yaml"
usher inject --uninject -f "$tmp/injected.yaml" >"$tmp/back.yaml"
kubernetes-validate --strict --quiet -k 1.37.0 "$tmp/back.yaml"
grep -q "usher.io/status" "$tmp/back.yaml" && { echo "uninject left the status annotation"; exit 1; }
echo "check-inject: OK (valid for Kubernetes 1.29 and 1.37, idempotent, uninjects)"
