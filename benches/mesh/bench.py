#!/usr/bin/env python3
"""Helpers for benches/mesh/run.sh: ports, readiness, /proc readings, wrk
output checks, result records, and the final table / BENCHMARKS.md section.

Standard library only (python3 >= 3.8). Each subcommand is small and is
called by run.sh; see `bench.py --help`.
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg, code=2):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(code)


# --------------------------------------------------------------- ports, waits

def cmd_freeport(a):
    """Prints N distinct free ports on 127.0.0.1 (all bound at once, then
    released, so they differ from each other)."""
    socks = []
    try:
        for _ in range(a.n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return _split_stat(f.read())[0] != "Z"
    except OSError:
        return False


def cmd_wait_tcp(a):
    """Polls host:port until it accepts a TCP connection; fails at the deadline
    or as soon as --pid has exited."""
    host, port = a.addr.rsplit(":", 1)
    end = time.monotonic() + a.timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            pass
        if a.pid and not _alive(a.pid):
            die(f"process {a.pid} exited before {a.addr} accepted connections")
        if time.monotonic() >= end:
            die(f"{a.addr} did not accept a connection within {a.timeout}s")
        time.sleep(0.02)


def cmd_wait_usher(a):
    """Polls an `usher run` log until its "usher ready" JSON line appears and
    prints the inbound, outbound and admin addresses it bound."""
    end = time.monotonic() + a.timeout
    while True:
        try:
            with open(a.log) as f:
                for line in f:
                    line = line.strip()
                    if not line.startswith("{"):
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("message") == "usher ready":
                        print(ev["inbound"], ev["outbound"], ev["admin"])
                        return
        except FileNotFoundError:
            pass
        if not _alive(a.pid):
            die(f"usher (pid {a.pid}) exited before it was ready; see {a.log}")
        if time.monotonic() >= end:
            die(f"usher (pid {a.pid}) not ready within {a.timeout}s; see {a.log}")
        time.sleep(0.02)


# --------------------------------------------------------------------- /proc

def _split_stat(text):
    # Fields after the command name, which is in parentheses and may contain
    # spaces: the list starts at field 3 (state).
    return text[text.rindex(")") + 2:].split()


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(_split_stat(f.read())[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _descendants(pid, kids):
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return sorted(out)


def _status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _jiffies(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = _split_stat(f.read())
    # utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    return int(fields[11]) + int(fields[12])


def cmd_procstat(a):
    """For each named PID prints CPU seconds (user+system, the PID and all its
    descendants: an nginx master and its workers) and memory (VmRSS, VmHWM)
    of the process that serves traffic: the PID itself, or, when it has
    children (nginx), the sum over its children (the workers)."""
    kids = _children_map()
    out = {}
    for name, pid in (x.split("=", 1) for x in a.procs):
        pid = int(pid)
        if not _alive(pid):
            die(f"{name} (pid {pid}) is not running")
        desc = _descendants(pid, kids)
        mem_pids = desc or [pid]
        out[name] = {
            "pid": pid,
            "workers": desc,
            "cpu_s": sum(_jiffies(p) for p in [pid] + desc) / CLK_TCK,
            "rss_kb": sum(_status_kb(p, "VmRSS") for p in mem_pids),
            "hwm_kb": sum(_status_kb(p, "VmHWM") for p in mem_pids),
        }
    json.dump(out, sys.stdout)
    print()


# ----------------------------------------------------------------------- wrk

def read_wrk(path):
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):]), text
    die(f"no WRKJSON line in {path} (did wrk fail to start?):\n{text}")


def check_wrk(path, what, expect_bytes=None):
    """Fails unless wrk saw requests, no socket error, no status >= 400
    (wrk's own count), no non-2xx (counted by wrk.lua in 'check' mode), and,
    given the size of one good response, as many bytes as that many good
    responses (a 3xx or an error page has another size)."""
    w, text = read_wrk(path)
    errs = {k: w[k] for k in ("err_connect", "err_read", "err_write",
                               "err_status", "err_timeout", "non2xx") if w.get(k)}
    if w["requests"] > 0 and expect_bytes:
        per = w["bytes"] / w["requests"]
        if abs(per - expect_bytes) > 0.01 * expect_bytes:
            errs["bytes_per_response"] = f"{per:.1f}, expected {expect_bytes} as for 200 \"ok\""
    if w["requests"] <= 0 or errs:
        die(f"{what}: wrk saw {w['requests']} requests and errors {errs} "
            f"(err_status counts responses >= 400); every response must be 200 \"ok\"."
            f"\n--- wrk output ({path}) ---\n{text}")
    return w


def _expect(d):
    p = os.path.join(d, "expect_bytes")
    if os.path.exists(p):
        with open(p) as f:
            return int(f.read().split()[0])
    return None


def cmd_check_wrk(a):
    check_wrk(a.out, a.what, a.expect_bytes)


def cmd_pick_rate(a):
    """The fixed rate for the latency run: RATE, capped at half the measured
    saturation throughput so that it stays a moderate load."""
    w, _ = read_wrk(a.sat)
    rps = w["requests"] / (w["duration_us"] / 1e6)
    rate = min(a.rate, int(rps * a.max_fraction) // 10 * 10)
    print(max(rate, 10))


# ------------------------------------------------------------------- records

def cmd_record(a):
    """Checks one case's wrk runs and appends its figures to results.jsonl."""
    d = a.dir
    exp = _expect(d)
    sat = check_wrk(os.path.join(d, "sat.out"), f"{a.case} rep {a.rep} saturation run", exp)
    fix = check_wrk(os.path.join(d, "rate.out"), f"{a.case} rep {a.rep} fixed-rate run", exp)
    rec = {
        "case": a.case, "chain": a.chain, "conns": a.conns, "routes": a.routes,
        "rep": a.rep,
        "sat_requests": sat["requests"],
        "sat_rps": sat["requests"] / (sat["duration_us"] / 1e6),
        "sat_p50_us": sat["lat_p50_us"], "sat_p99_us": sat["lat_p99_us"],
        "rate_target": a.rate,
        "rate_achieved": fix["requests"] / (fix["duration_us"] / 1e6),
        "rate_late": fix["late"],
        "p50_us": fix["lat_p50_us"], "p90_us": fix["lat_p90_us"],
        "p99_us": fix["lat_p99_us"], "p999_us": fix["lat_p999_us"],
        "max_us": fix["lat_max_us"],
        "proxies": {},
    }
    stats = {}
    for phase in ("idle", "before", "after", "end"):
        p = os.path.join(d, f"ps_{phase}.json")
        if os.path.exists(p):
            with open(p) as f:
                stats[phase] = json.load(f)
    for name in stats.get("idle", {}):
        cpu = stats["after"][name]["cpu_s"] - stats["before"][name]["cpu_s"]
        rec["proxies"][name] = {
            "cpu_us_per_req": cpu * 1e6 / sat["requests"],
            "idle_rss_kb": stats["idle"][name]["rss_kb"],
            "peak_rss_kb": stats["end"][name]["hwm_kb"],
        }
    if rec["proxies"]:
        rec["cpu_us_per_req"] = sum(p["cpu_us_per_req"] for p in rec["proxies"].values())
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    line = (f"  {a.case:<12} rep {a.rep}: {rec['sat_rps']:9.0f} req/s  "
            f"p50 {rec['p50_us']} µs  p99 {rec['p99_us']} µs at {a.rate} req/s")
    if "cpu_us_per_req" in rec:
        line += f"  cpu {rec['cpu_us_per_req']:.1f} µs/req"
    print(line)


# -------------------------------------------------------------------- report

def _version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not found"
    out = (p.stdout + p.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


def machine_info(usher_bin):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nginx = _version(["nginx", "-v"]).replace("nginx version: ", "")
    wrk = _version(["wrk", "-v"])
    m = re.match(r"(wrk \S+)", wrk)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "nginx": nginx,
        "openssl": " ".join(_version(["openssl", "version"]).split()[:2]),
        "wrk": m.group(1) if m else wrk,
        "usher": _version([usher_bin, "--version"]),
    }


def _fmt(vals, nd=0):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    f = f"{{:,.{nd}f}}"
    med = f.format(statistics.median(vals))
    if len(vals) == 1 or f.format(min(vals)) == f.format(max(vals)):
        return med
    return f"{med} ({f.format(min(vals))}–{f.format(max(vals))})"


CHAIN_DESC = {
    "direct": "wrk → backend",
    "usher": "wrk → usher out → mTLS → usher in → backend",
    "usher-policy": "as usher, with a Rego policy (1,000 principals, 100 prefixes) on usher in",
    "usher-tracing": "as usher, both sidecars tracing every request (sampling 1.0, OTLP/gRPC to a local sink)",
    "usher-accesslog": "as usher, both sidecars writing the JSON access log (to a file)",
    "usher-full": "as usher, with the policy on usher in (decision log at its default: every decision) and both sidecars tracing every request",
    "nginx": "wrk → nginx out → mTLS → nginx in → backend",
}


def build_report(results, env, machine, label, section="mesh"):
    by_case = {}
    for r in results:
        by_case.setdefault(r["case"], []).append(r)
    reps = max((r["rep"] for r in results), default=0)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = []
    title = "Mesh load benchmark, scale" if section.endswith("scale") else "Mesh load benchmark"
    lines.append(f"## {title} — {label}, {now}")
    lines.append("")
    lines.append(f"Command: `{env.get('MESH_COMMAND', 'benches/mesh/run.sh')}`. "
                 "Method: [benches/mesh/README.md](benches/mesh/README.md).")
    lines.append("")
    lines.append(f"- Machine: {machine['nproc']} CPUs ({machine['cpu']}), Linux {machine['kernel']}; "
                 "load generator, backend and proxies all share these CPUs, nothing pinned.")
    lines.append(f"- Versions: usher `{machine['usher']}`"
                 f"{' (' + env['MESH_GIT'] + ')' if env.get('MESH_GIT') else ''}, "
                 f"nginx `{machine['nginx']}` ({machine['openssl']}), `{machine['wrk']}`.")
    lines.append(f"- Conditions: {env['MESH_DURATION']} s per measurement, {reps} repetition(s) "
                 f"(median, min–max in brackets), {env['MESH_WARMUP']} s warm-up per case; "
                 "HTTP/1.1 keep-alive, `GET /` with `Host: b`, 2-byte body; "
                 "wrk 1 thread; req/s from a closed loop at the case's connection count; "
                 f"latency at a fixed rate of min({env['MESH_RATE']}, ½ × that case's req/s) req/s, "
                 "paced by wrk.lua (not corrected for coordinated omission).")
    lines.append(f"- TLS: 1.3, ECDSA P-256 certificates from `usher ca`, mutual; key exchange: "
                 f"{env['MESH_KX']}. usher: runtime {env.get('MESH_WORKERS', 'default (runtime.workers: 1)')}, "
                 "HTTP/1.1 from wrk and to the backend, the sidecar hop multiplexed over HTTP/2 "
                 "(`outbound.multiplex`, the default); nginx: `worker_processes 1`, keepalive 64 upstreams, "
                 "access_log off.")
    if env.get("MESH_EXTRA_DESC"):
        lines.append(f"- Extra usher config: {env['MESH_EXTRA_DESC']}.")
    lines.append("- CPU µs/req: user+system time of both proxies (nginx: masters and workers) "
                 "over the closed-loop run ÷ requests served. RSS: VmRSS before any load (idle) "
                 "and VmHWM after both runs (peak); nginx: the worker.")
    lines.append("")
    hdr = ["case", "chain", "conns", "routes", "req/s", "fixed rate (req/s)",
           "p50 (µs)", "p99 (µs)", "proxy CPU (µs/req)"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(hdr) - 2)) + "|")
    late_cases = []
    for case, rs in by_case.items():
        r0 = rs[0]
        rate_cell = _fmt([r["rate_target"] for r in rs])
        if any(r["rate_achieved"] < 0.95 * r["rate_target"] or r["rate_late"] > 0.01 * r["rate_target"]
               for r in rs):
            rate_cell += " ⚠"
            late_cases.append(case)
        lines.append("| " + " | ".join([
            case, CHAIN_DESC.get(r0["chain"], r0["chain"]), str(r0["conns"]), str(r0["routes"]),
            _fmt([r["sat_rps"] for r in rs]),
            rate_cell,
            _fmt([r["p50_us"] for r in rs]),
            _fmt([r["p99_us"] for r in rs]),
            _fmt([r.get("cpu_us_per_req") for r in rs], 1),
        ]) + " |")
    lines.append("")
    if late_cases:
        lines.append(f"⚠ {', '.join(late_cases)}: the paced run fell behind its rate "
                     "(achieved < 95 % or late slots > 1 %), so its latency is closer to saturation.")
        lines.append("")
    # Per-proxy detail.
    rows = []
    for case, rs in by_case.items():
        names = list(rs[0]["proxies"])
        for n in names:
            rows.append("| " + " | ".join([
                case, n,
                _fmt([r["proxies"][n]["cpu_us_per_req"] for r in rs], 1),
                _fmt([r["proxies"][n]["idle_rss_kb"] / 1024 for r in rs], 1),
                _fmt([r["proxies"][n]["peak_rss_kb"] / 1024 for r in rs], 1),
            ]) + " |")
    if rows:
        lines.append("| case | proxy | CPU (µs/req) | idle RSS (MiB) | peak RSS (MiB) |")
        lines.append("|---|---|--:|--:|--:|")
        lines.extend(rows)
        lines.append("")
        lines.append("`out`: the caller's side (plain HTTP in, mTLS out); `in`: the callee's side "
                     "(mTLS in, plain HTTP to the backend).")
        lines.append("")
    return "\n".join(lines)


def write_section(path, section, body):
    start = f"<!-- bench:{section}:start -->"
    end = f"<!-- bench:{section}:end -->"
    block = f"{start}\n{body}\n{end}\n"
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if start in text and end in text:
        i = text.index(start)
        j = text.index(end) + len(end)
        if j < len(text) and text[j] == "\n":
            j += 1
        text = text[:i] + block + text[j:]
    else:
        if not text:
            text = "# Benchmarks\n\n"
        elif not text.endswith("\n\n"):
            text = text.rstrip("\n") + "\n\n"
        text += block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_report(a):
    with open(a.results) as f:
        results = [json.loads(line) for line in f if line.strip()]
    if not results:
        die("no results to report")
    machine = machine_info(a.usher)
    body = build_report(results, os.environ, machine, a.label, a.section)
    print()
    print(body)
    if a.out and a.out not in ("-", "none"):
        write_section(a.out, a.section, body)
        print(f"written to {a.out} (section {a.section})")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("freeport")
    s.add_argument("n", type=int, nargs="?", default=1)
    s.set_defaults(fn=cmd_freeport)

    s = sub.add_parser("wait-tcp")
    s.add_argument("addr")
    s.add_argument("--timeout", type=float, default=10)
    s.add_argument("--pid", type=int)
    s.set_defaults(fn=cmd_wait_tcp)

    s = sub.add_parser("wait-usher")
    s.add_argument("log")
    s.add_argument("pid", type=int)
    s.add_argument("--timeout", type=float, default=10)
    s.set_defaults(fn=cmd_wait_usher)

    s = sub.add_parser("procstat")
    s.add_argument("procs", nargs="+", metavar="NAME=PID")
    s.set_defaults(fn=cmd_procstat)

    s = sub.add_parser("check-wrk")
    s.add_argument("out")
    s.add_argument("what")
    s.add_argument("--expect-bytes", type=int)
    s.set_defaults(fn=cmd_check_wrk)

    s = sub.add_parser("pick-rate")
    s.add_argument("sat")
    s.add_argument("rate", type=int)
    s.add_argument("--max-fraction", type=float, default=0.5)
    s.set_defaults(fn=cmd_pick_rate)

    s = sub.add_parser("record")
    for k in ("dir", "case", "chain", "results"):
        s.add_argument("--" + k, required=True)
    for k in ("conns", "routes", "rep", "rate"):
        s.add_argument("--" + k, required=True, type=int)
    s.set_defaults(fn=cmd_record)

    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--usher", required=True)
    s.add_argument("--label", required=True)
    s.add_argument("--section", default="mesh")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_report)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
