#!/usr/bin/env python3
"""Checks that bench.json has every section and every row its fields (not the figures)."""
import sys
import json
d = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "bench.json"))
for key in ["machine", "read", "read_check", "read_sweep", "revoke", "unbind", "irq", "lockdep", "workqueue", "workqueue_timer",
            "crossover", "async_latency", "async_revoke", "read_async_writer"]:
    assert key in d and d[key], f"bench.json lacks {key}"
fields = {
    "read": ["strategy", "readers", "writer", "writer_per_s", "ns_per_op", "ops_per_s"],
    "read_check": ["strategy", "readers", "ns_per_op", "ratio_to_c", "ratio_to_c_checked"],
    "read_sweep": ["strategy", "readers", "writer_target_per_s", "writer_per_s", "ops_per_s"],
    "revoke": ["strategy", "readers", "ns_p50", "ns_p99"],
    "unbind": ["strategy", "objects", "seconds", "grace_periods", "bytes_per_object"],
    "irq": ["source", "mode", "p50_us", "p99_us", "p999_us", "irqs_per_s"],
    "lockdep": ["lock", "validator", "depth", "ns_per_op"],
    "workqueue": ["path", "p50_us", "p99_us", "items_per_s"],
    "workqueue_timer": ["delay_us", "run_late_p50_us", "run_late_p99_us", "early", "samples"],
    "async_latency": ["mode", "readers", "p50_us", "p99_us"],
    "async_revoke": ["mode", "revokes", "concurrency", "grace_periods", "seconds"],
    "read_async_writer": ["strategy", "writer", "writer_per_s", "ops_per_s", "no_writer_ops_per_s"],
}
assert sorted(r["path"] for r in d["workqueue"]) == ["c-irq-to-worker", "irq-to-work"], "workqueue rows"
for section, names in fields.items():
    for row in d[section]:
        missing = [n for n in names if n not in row]
        assert not missing, f"{section} row lacks {missing}: {row}"
assert "reads_per_unbind" in d["crossover"]
assert {r["strategy"] for r in d["read_check"]} == {"c-urcu", "c-urcu-checked", "rcu"}, "read_check rows"
assert {r["mode"] for r in d["async_revoke"]} == {"async", "blocking"}
assert {r["writer"] for r in d["read_async_writer"]} == {"blocking-paced", "async-paced"}
assert {(r["mode"], r["readers"]) for r in d["async_latency"]} >= {("async", 0), ("async", 2), ("blocking", 0), ("blocking", 2)}
for key in ["cpu_model", "cores", "kernel", "liburcu_version", "membarrier"]:
    assert key in d["machine"], f"machine lacks {key}"
print("bench.json: valid,", sum(len(d[s]) for s in fields), "rows")
