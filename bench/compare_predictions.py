"""Compare two predictions.jsonl record by record: every field but timings_s (codes, scores, criteria scores,
status, errors). Usage: python bench/compare_predictions.py BEFORE/predictions.jsonl AFTER/predictions.jsonl
(docs/benchmarks.md "Layering"); exit 1 when any record differs."""
import json, sys
def load(p):
    return {r["record_id"]: r for r in map(json.loads, open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
common = sorted(set(a) & set(b), key=lambda x: int(x) if x.isdigit() else x)
diff = []
for k in common:
    ra = {x: y for x, y in a[k].items() if x != "timings_s"}
    rb = {x: y for x, y in b[k].items() if x != "timings_s"}
    if ra != rb:
        diff.append((k, [f for f in set(ra) | set(rb) if ra.get(f) != rb.get(f)]))
print(f"records: before {len(a)}, after {len(b)}, compared {len(common)}, only before {len(set(a)-set(b))}, "
      f"only after {len(set(b)-set(a))}; identical (codes, scores, criteria scores, status, errors) {len(common)-len(diff)}, different {len(diff)}")
for k, f in diff[:10]:
    print("  differs:", k, f)
sys.exit(1 if diff or set(a) != set(b) else 0)
