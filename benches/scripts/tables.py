#!/usr/bin/env python3
"""Renders the JSON files of benches/scripts/sweep as the markdown tables of docs/BENCHMARKS.md.
Usage: benches/scripts/tables.py SWEEP_DIR"""
import json, pathlib, sys

d = pathlib.Path(sys.argv[1])

def load(name):
    p = d / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None

def num(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"

def pair(doc, key, digits=1, ratio=True):
    r, f = doc["runs"][0], doc["runs"][1]
    a, b = r.get(key), f.get(key)
    cell = f"{num(a, digits)} / {num(b, digits)}"
    if ratio and a is not None and b not in (None, 0):
        cell += f" (**{a / b:.2f}**)"
    return cell

cols = [("convergence s", "convergence_s", 1, True),
        ("detection median s", "detect_median_s", 1, True),
        ("detection last s", "detect_last_s", 1, True),
        ("false failures (members)", None, 0, False),
        ("msgs/node/s", "msgs_per_node_s", 1, True),
        ("bytes/node/s", "bytes_per_node_s", 0, True),
        ("CPU µs/node/s", "cpu_us_per_node_s", 1, True),
        ("heap KiB/node", "heap_kib", 0, True),
        ("wall s", "wall_s", 2, False)]

def row(doc, label):
    for r in doc["runs"]:
        r["heap_kib"] = None if r.get("heap_bytes_per_node") is None else r["heap_bytes_per_node"] / 1024
    cells = [label]
    for _, key, digits, ratio in cols:
        if key is None:
            r, f = doc["runs"]
            cells.append(f"{r['false_failures']} ({r['falsely_failed_members']}) / "
                         f"{f['false_failures']} ({f['falsely_failed_members']})")
        else:
            cells.append(pair(doc, key, digits, ratio))
    return "| " + " | ".join(cells) + " |"

print("| nodes, loss | " + " | ".join(c[0] for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for n in (50, 1000):
    for loss in (0, 10, 30):
        doc = load(f"crash-{n}-{loss}")
        if doc:
            print(row(doc, f"{n:,}, {loss} %"))
print()
print("| scenario (50 nodes, 10 % loss) | detected by | recovery s | " + " | ".join(c[0] for c in cols) + " |")
print("|---" * (len(cols) + 3) + "|")
for s in ("join", "leave", "loss", "partition", "pause", "event"):
    doc = load(f"{s}-50-10")
    if doc:
        r, f = doc["runs"]
        extra = f"{r['detected_by']}/{r['observers']} / {f['detected_by']}/{f['observers']} | {pair(doc, 'recovery_s', 1)}"
        print(row(doc, s).replace(f"| {s} |", f"| {s} | {extra} |", 1))
doc = load("join-1000-0")
if doc:
    print()
    print("| join, 1,000 nodes, 0 % loss | " + " | ".join(c[0] for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    print(row(doc, "join"))
