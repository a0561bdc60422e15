#!/usr/bin/env python3
"""Records what real OPA returns for every case of the compatibility suite.

Usage (from the repository root):

    pip install --no-deps --ignore-requires-python opa-golib-python-bindings
    python3 policy/compat/record.py            # re-record every case
    python3 policy/compat/record.py NAME...    # only these cases
    python3 policy/compat/record.py --check    # compare, write nothing; exit 1 on a change

Then run the Rust side (no Python needed there):

    cargo test --locked -p usher-policy --test opa_compat -- --nocapture

OPA is the Go engine (`github.com/open-policy-agent/opa/v1/rego`, OPA 1.x)
embedded in the PyPI package `opa-golib-python-bindings` (a ctypes wrapper
around a c-shared library; it declares Python >= 3.14 but works on 3.11,
hence `--ignore-requires-python`; `--no-deps` because it needs nothing).

A case is a folder `cases/<name>/` with

    *.rego        the policy files usher loads (sorted by name)
    input.json    the input document
    data.json     optional: merged at the root of `data`
    query.txt     the query, a rule path like data.envoy.authz.allow
    meta          `rego_version: v0` or `rego_version: v1`, and `note: ...` lines
    opa_v1/       v0 cases only: the same files translated by hand to v1 syntax

and its expectation `expected/<name>.json`:

    {"result": <value>}            the query's value
    {"undefined": true}            the query is undefined
    {"error": "<code>", "kind": "<rego_..._error>", "message": "..."}
    plus "set_paths": [[step, ...], ...] when the value holds sets (OPA gives
    sets as sorted arrays; the Rust test compares those arrays as sets). A
    step is an object key, an array index, or "*" for "an element of a set".

Two things this embedded OPA cannot do, and how the suite copes:

- It parses Rego v1 only (OPA 1.x's default; the bridge has no v0 option).
  A v0 case therefore keeps a v1 translation under `opa_v1/` (the same rules
  with `if` / `contains` added), which is what is recorded. Keep v0 cases
  free of deprecated builtins (v1 refuses them) so both mean the same.
- It evaluates with strict builtin errors, while OPA's default (`opa run`,
  opa-envoy-plugin) makes a failing builtin call undefined. A case whose
  recording hits `eval_builtin_error` is refused: write the case so that no
  builtin call fails.

Time: cases must not depend on the clock. Pass times in the input (or use
the `time` constraint of io.jwt.decode_verify); `time.now_ns()` may only be
used in a way whose outcome does not depend on its value.
"""

import json
import sys
from pathlib import Path

try:
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError
except ImportError:  # pragma: no cover
    sys.exit(
        "needs the OPA bindings: pip install --no-deps --ignore-requires-python "
        "opa-golib-python-bindings"
    )

ROOT = Path(__file__).resolve().parent
CASES = ROOT / "cases"
EXPECTED = ROOT / "expected"


def read_meta(case: Path) -> dict:
    meta = {"rego_version": "v1", "note": []}
    path = case / "meta"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "note":
                meta["note"].append(value)
            else:
                meta[key] = value
    if meta["rego_version"] not in ("v0", "v1"):
        raise SystemExit(f"{case.name}: meta: rego_version must be v0 or v1")
    return meta


def opa_sources(case: Path, meta: dict) -> list:
    folder = case / "opa_v1" if meta["rego_version"] == "v0" else case
    if meta["rego_version"] == "v0" and not folder.is_dir():
        raise SystemExit(f"{case.name}: a v0 case needs its v1 translation in opa_v1/")
    files = sorted(folder.glob("*.rego"))
    if not files:
        raise SystemExit(f"{case.name}: no .rego file in {folder}")
    if meta["rego_version"] == "v0":
        usher_names = sorted(p.name for p in case.glob("*.rego"))
        if usher_names != [p.name for p in files]:
            raise SystemExit(f"{case.name}: opa_v1/ must hold one translation per .rego file")
    return files


def error_kind(message: str) -> str:
    for word in message.replace(":", " ").split():
        if word.startswith(("rego_", "eval_")) and word.endswith("_error"):
            return word
    return ""


def record(case: Path) -> dict:
    meta = read_meta(case)
    query = (case / "query.txt").read_text().strip()
    if not query.startswith("data."):
        raise SystemExit(f"{case.name}: query.txt must be a rule path starting with data.")
    input_doc = json.loads((case / "input.json").read_text())
    engine = OpaEngine()
    engine.print_handler = lambda message, location: None  # print() output is not recorded
    try:
        for f in opa_sources(case, meta):
            engine.add_policy(f.name, f.read_text())
        data_file = case / "data.json"
        if data_file.exists():
            engine.add_data(json.loads(data_file.read_text()))
        try:
            value = engine.eval_document(query[len("data."):], input_doc)
        except OpaUndefinedError:
            return {"undefined": True}
        out = {"result": value}
        # Which parts of the value are sets: OPA's JSON gives them as arrays.
        rows = engine.eval_query(
            f"__types := [[p, type_name(v)] | walk({query}, [p, v])]", input_doc
        )
        types = {json.dumps(p): t for p, t in rows[0]["__types"]} if rows else {}
        set_paths = []
        for key, t in types.items():
            if t != "set":
                continue
            path = json.loads(key)
            starred = [
                "*" if types.get(json.dumps(path[:i])) == "set" else step
                for i, step in enumerate(path)
            ]
            if starred not in set_paths:
                set_paths.append(starred)
        if set_paths:
            out["set_paths"] = sorted(set_paths, key=json.dumps)
        return out
    except OpaError as e:
        if error_kind(e.message) == "eval_builtin_error":
            raise SystemExit(
                f"{case.name}: OPA raised {e.message!r}; this bridge has strict builtin "
                "errors, OPA's default would make the call undefined: rewrite the case "
                "so that no builtin call fails"
            )
        return {"error": e.code, "kind": error_kind(e.message), "message": e.message}
    finally:
        engine.close()


def opa_version() -> str:
    # opa.runtime() is empty in the embedded engine: name the package instead.
    try:
        from importlib.metadata import version

        return f"opa-golib-python-bindings {version('opa-golib-python-bindings')}"
    except Exception:  # pragma: no cover
        return "opa-golib-python-bindings (unknown version)"


def main(argv):
    check = "--check" in argv
    names = [a for a in argv if not a.startswith("--")]
    cases = sorted(p for p in CASES.iterdir() if p.is_dir())
    if names:
        unknown = set(names) - {c.name for c in cases}
        if unknown:
            raise SystemExit(f"no such case: {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.name in names]
    version = opa_version()
    EXPECTED.mkdir(exist_ok=True)
    changed = []
    counts = {"result": 0, "undefined": 0, "error": 0}
    for case in cases:
        out = record(case)
        out["recorded_with"] = version
        counts[next(k for k in counts if k in out)] += 1
        text = json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        target = EXPECTED / f"{case.name}.json"
        old = target.read_text() if target.exists() else None
        if old != text:
            changed.append(case.name)
            if not check:
                target.write_text(text)
    if not names:
        known = {c.name for c in cases}
        for stale in sorted(EXPECTED.glob("*.json")):
            if stale.stem not in known:
                changed.append(f"{stale.stem} (no such case)")
                if not check:
                    stale.unlink()
    print(
        f"{version}: {len(cases)} cases ({counts['result']} values, "
        f"{counts['undefined']} undefined, {counts['error']} errors); "
        f"{'would change' if check else 'changed'}: {', '.join(changed) or 'none'}"
    )
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
