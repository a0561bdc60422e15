#!/usr/bin/env python3
"""Writes the data for policy/authz.rego: 1,000 principals (the bench's
caller among them) spread over 10 roles, each role allowed 10 path prefixes
(100 in all). Usage: gen_data.py CALLER_SPIFFE_ID OUT.json"""
import json
import sys

caller, out = sys.argv[1], sys.argv[2]
td = caller.split("/")[2]
roles = {f"spiffe://{td}/ns/bench/sa/svc-{i}": f"role-{i % 10}" for i in range(999)}
roles[caller] = "role-0"
prefixes = {f"role-{r}": [f"/api/r{r}/p{p}/" for p in range(9)] for r in range(10)}
prefixes["role-0"].append("/")  # the bench requests GET /
with open(out, "w") as f:
    json.dump({"bench": {"roles": roles, "prefixes": prefixes}}, f)
