"""Compare two `ragecg diagnose --json` outputs minus timings (timings_s, llm.seconds, llm.ttft_s) and the
prefix-cache accounting (llm.cached_prompt_tokens, which depends on what the KV cache held before).
Usage: python bench/compare_reports.py A.json B.json (docs/benchmarks.md "Layering"); exit 1 on a difference."""
import json, sys
def clean(p):
    d = json.load(open(p))
    d.pop("timings_s", None)
    llm = d.get("diagnosis", {}).get("llm", {})
    for k in ("seconds", "ttft_s", "cached_prompt_tokens"):
        llm.pop(k, None)
    return d
def walk(a, b, path=""):
    if type(a) != type(b):
        yield path; return
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            yield from walk(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            yield path + "[len]"; return
        for i, (x, y) in enumerate(zip(a, b)):
            yield from walk(x, y, f"{path}[{i}]")
    elif a != b:
        yield path
a, b = clean(sys.argv[1]), clean(sys.argv[2])
diffs = list(walk(a, b))
print(f"{sys.argv[1]} vs {sys.argv[2]}: {'identical' if not diffs else str(len(diffs)) + ' differences: ' + ', '.join(diffs[:10])}"
      f" (mode {a['diagnosis']['mode']}, llm {a['diagnosis']['llm']['status']}, codes {[c['code'] for c in a['diagnosis']['codes']]})")
sys.exit(1 if diffs else 0)
