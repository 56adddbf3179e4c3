"""The LLM stage on this machine with the embedded model (SmolLM2-135M-Instruct Q4_1, llama.cpp):
tokens, decode calls and times per record, the static-prefix KV cache against no cache, end-to-end diagnose
time, codes with the LLM against criteria-only on labelled records, and grounding.

    python bench/llm.py                      # 20 PTB-XL fold-9 records, cache comparison on 5
    python bench/llm.py --records 50 --uncached 10 --threads 2

Records: a fixed sample of PTB-XL fold 9 (validation) at 100 Hz (`select_ptbxl_items`, numpy
default_rng(seed) choice, sorted). Fold 10 is never read. For each record, in one process:
1. `diagnose` criteria-only (use_llm=False): the baseline codes and its time;
2. `diagnose` with the LLM, the static prefix (instructions + schema) kept in the KV cache;
3. for the first `--uncached` records, the same with a second backend that decodes the whole
   prompt every call (cache_prefix=False): whether the answer is the same, and time-to-first-token
   of the record's prompt with and without the cache (max_tokens=1 calls, alternating, min of 2,
   wall and process-CPU seconds: the machine is shared, CPU time is what its load does not inflate).
Labels (`scp_codes`, any likelihood, as the PTB-XL benchmark) are read only to score both
systems after the runs; nothing is chosen from them. Codes are compared over all 71 statements
(micro precision/recall/F1), and every code the LLM added or removed is checked against the
labels. Grounding: of the sentences the LLM wrote, the share whose cited keys were all among
those it was shown, keys and codes stripped, and sentences dropped by reason.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragecg.compose.prompt import build_prompt, offered_candidates  # noqa: E402
from ragecg.values import Candidates  # noqa: E402
from ragecg.app.eval.labels import load_database, load_statements, record_labels, task_definition  # noqa: E402
from ragecg.app.eval.runner import select_ptbxl_items  # noqa: E402
from ragecg.llm.backends import LlamaCppBackend, load_backend  # noqa: E402
from ragecg.pipeline import Resources, diagnose  # noqa: E402
from ragecg.reading.record import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402


def prf(pairs: list[tuple[set, set]]) -> tuple[float, float, float]:
    tp = sum(len(p & y) for p, y in pairs)
    fp = sum(len(p - y) for p, y in pairs)
    fn = sum(len(y - p) for p, y in pairs)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ttft_pair(cached, uncached, rep, settings, repeats: int = 2) -> dict[str, float]:
    """Time to first token of the record's prompt with and without the prefix cache: calls with
    max_tokens=1, alternating, `repeats` each; the minimum wall and process-CPU seconds of each
    (CPU time is what the shared machine's load does not inflate; llama.cpp runs in this process)."""
    cands = Candidates(scores=rep.candidate_scores, candidates=rep.criteria)
    prompt = build_prompt(rep.measurements, rep.quality, offered_candidates(cands), rep.evidence,
                          cached.count_tokens, settings.llm_prompt_tokens)
    out = {"cached_wall": [], "cached_cpu": [], "uncached_wall": [], "uncached_cpu": []}
    for _ in range(repeats):
        for name, b in (("uncached", uncached), ("cached", cached)):
            w, c = time.perf_counter(), time.process_time()
            b.complete_json(prompt.system, prompt.user, prompt.schema_, max_tokens=1, timeout_s=600)
            out[f"{name}_wall"].append(time.perf_counter() - w)
            out[f"{name}_cpu"].append(time.process_time() - c)
    return {k: min(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20)
    ap.add_argument("--uncached", type=int, default=5, help="records also run without the prefix cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--retrieval", action="store_true", help="retrieve passages (builds/loads the index)")
    ap.add_argument("--cold", type=int, default=0,
                    help="also run `ragecg diagnose --json` in a new process on this many records (cold start)")
    args = ap.parse_args()

    overrides = {"llm_threads": args.threads, "llm_max_tokens": args.max_tokens, "llm_timeout_s": 600.0}
    settings = get_settings(**overrides)
    ptbxl = settings.data_dir / "ptbxl"
    db = load_database(ptbxl)
    items, _ = select_ptbxl_items(db, ptbxl, folds=[9], sampling_rate_hz=100, sample=args.records, seed=args.seed)
    task = task_definition("all", load_statements(ptbxl))

    print(f"command: python bench/llm.py {shlex.join(sys.argv[1:])}")
    print(f"{len(items)} PTB-XL fold-9 records at 100 Hz (seed {args.seed}); retrieval "
          f"{'on' if args.retrieval else 'off'}; {os.cpu_count()} CPU cores visible; "
          f"load average before: {os.getloadavg()[0]:.2f}")

    t = time.perf_counter()
    cached = load_backend(settings)
    load_s = time.perf_counter() - t
    print(f"model {cached.model_id} sha256 {cached.model_sha256[:16]}…, loaded (incl. sha256 check) in {load_s:.2f} s, "
          f"{cached.n_threads} threads, max_tokens {settings.llm_max_tokens}")
    uncached = LlamaCppBackend(cached.path, model_id=cached.model_id, model_sha256=cached.model_sha256,
                               n_ctx=settings.llm_n_ctx, seed=settings.llm_seed, n_threads=cached.n_threads,
                               cache_prefix=False)
    res_crit = Resources(settings=settings, use_llm=False, use_retrieval=args.retrieval)
    res_llm = Resources(settings=settings, use_llm=True, use_retrieval=args.retrieval, _backend=cached)
    res_unc = Resources(settings=settings, use_llm=True, use_retrieval=args.retrieval, _backend=uncached)

    rows = []
    print("\nrecord  prompt_tok  cached_tok  gen_tok  ttft_s  llm_s  diagnose_s(crit/llm)  status  codes crit -> llm")
    for i, item in enumerate(items):
        ecg = read_record(item["path"])
        t = time.perf_counter()
        crit = diagnose(ecg, resources=res_crit)
        crit_s = time.perf_counter() - t
        t = time.perf_counter()
        rep = diagnose(ecg, resources=res_llm)
        llm_s = time.perf_counter() - t
        d = rep.diagnosis
        row = {"id": item["record_id"], "crit": {c.code for c in crit.diagnosis.codes},
               "llm": {c.code for c in d.codes}, "labels": record_labels(db.at[item["ecg_id"], "scp_codes"], task),
               "crit_s": crit_s, "llm_total_s": llm_s, "d": d}
        if i < args.uncached:
            u = diagnose(ecg, resources=res_unc).diagnosis
            row["unc"] = u
            row["same_text"] = (u.llm.status == d.llm.status == "ok"
                                and [s.text for s in u.narrative] == [s.text for s in d.narrative]
                                and u.scores == d.scores)
            row["ttft"] = ttft_pair(cached, uncached, rep, settings)
        rows.append(row)
        info = d.llm
        print(f"{row['id']:>6}  {info.prompt_tokens or 0:>10}  {info.cached_prompt_tokens or 0:>10}  "
              f"{info.completion_tokens or 0:>7}  {info.ttft_s or 0:>6.2f}  {info.seconds or 0:>5.1f}  "
              f"{crit_s:>9.2f} / {llm_s:>6.1f}  {info.status:>7}  {sorted(row['crit'])} -> {sorted(row['llm'])}"
              + (f"   TTFT cpu uncached {row['ttft']['uncached_cpu']:.2f} s / cached {row['ttft']['cached_cpu']:.2f} s"
                 if "ttft" in row else ""))

    ok = [r for r in rows if r["d"].llm.status == "ok"]
    print("\n## Figures")
    print(f"LLM status: {dict((s, sum(r['d'].llm.status == s for r in rows)) for s in ('ok', 'timeout', 'failed', 'invalid'))}"
          f"; truncated at max_tokens: {sum(r['d'].llm.truncated for r in ok)}")
    print(f"per record (median over {len(ok)} ok): prompt {med([r['d'].llm.prompt_tokens for r in ok]):.0f} tokens "
          f"(static prefix {med([r['d'].llm.cached_prompt_tokens for r in ok[1:]]):.0f} cached), generated "
          f"{med([r['d'].llm.completion_tokens for r in ok]):.0f} tokens in {med([r['d'].llm.decode_calls or 0 for r in ok]):.0f} "
          f"decode calls, LLM call {med([r['d'].llm.seconds for r in ok]):.1f} s, "
          f"TTFT {med([r['d'].llm.ttft_s for r in ok]):.2f} s")
    both = [r for r in rows if "ttft" in r]
    if both:
        def ratio(kind: str) -> str:
            u = med([r["ttft"][f"uncached_{kind}"] for r in both])
            c = med([r["ttft"][f"cached_{kind}"] for r in both])
            return f"{u:.2f} s -> {c:.2f} s = {u / c:.2f}x"
        print(f"prefix cache, TTFT on {len(both)} records (median of per-record minima of 2 alternating runs): "
              f"process CPU {ratio('cpu')}; wall {ratio('wall')}; "
              f"same narrative and scores with and without the cache: {sum(r['same_text'] for r in both)}/{len(both)}")
    print(f"end-to-end diagnose (median): criteria-only {med([r['crit_s'] for r in rows]):.2f} s, "
          f"with LLM {med([r['llm_total_s'] for r in rows]):.1f} s")
    pc, rc, fc = prf([(r["crit"], r["labels"]) for r in rows])
    pl, rl, fl = prf([(r["llm"], r["labels"]) for r in rows])
    print(f"codes vs PTB-XL labels (all 71 statements, micro): criteria-only P {pc:.3f} R {rc:.3f} F1 {fc:.3f}; "
          f"with LLM P {pl:.3f} R {rl:.3f} F1 {fl:.3f}")
    added = [(c, c in r["labels"]) for r in rows for c in r["llm"] - r["crit"]]
    removed = [(c, c not in r["labels"]) for r in rows for c in r["crit"] - r["llm"]]
    print(f"records whose codes the LLM changed: {sum(r['llm'] != r['crit'] for r in rows)}/{len(rows)}; "
          f"added {len(added)} (correct {sum(x for _, x in added)}), removed {len(removed)} "
          f"(correctly {sum(x for _, x in removed)})")
    raw = sum(r["d"].llm.sentences_raw or 0 for r in ok)
    valid = sum(r["d"].llm.sentences_keys_valid or 0 for r in ok)
    kept = sum(sum(s.origin == "llm" for s in r["d"].narrative) for r in ok)
    dropped: dict[str, int] = {}
    for r in ok:
        for k, v in r["d"].dropped_sentences.items():
            dropped[k] = dropped.get(k, 0) + v
    print(f"grounding: {raw} sentences written, {valid} ({(valid / raw if raw else 0):.0%}) with every key valid, "
          f"{kept} kept in the narrative; dropped by reason {dropped}; stripped keys "
          f"{sum(len(r['d'].stripped_keys) for r in ok)}, stripped codes {sum(len(r['d'].stripped_codes) for r in ok)}")
    if args.cold:
        cold_starts(items[: args.cold], args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def cold_starts(items: list[dict], args) -> None:
    """What one `ragecg diagnose record.hea --json` costs in a new process (imports, index and model
    loading, the prefix's KV state read from disk): wall time of the process, its stages, and the
    time before the first record can be read (`import ragecg.cli` + model load + prefix state)."""
    import json
    import subprocess
    exe = [sys.executable, "-m", "ragecg.cli"]
    flags = [] if args.retrieval else ["--no-retrieval"]
    if args.threads:
        os.environ["RAGECG_LLM_THREADS"] = str(args.threads)
    ready = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from ragecg.llm import load_backend; from ragecg.settings import "
                        "get_settings; from ragecg.compose.prompt import system_prompt; b = load_backend(get_settings()); "
                        "p, _ = b._split_prompt(system_prompt(), 'x'); b._restore_prefix_state(p) or b._llm.eval(p)"],
                       check=True)
        ready.append(time.perf_counter() - t)
    walls, stages = [], []
    for item in items:
        t = time.perf_counter()
        out = subprocess.run(exe + ["diagnose", str(item["path"]), "--json", *flags], capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if out.returncode == 0:
            rep = json.loads(out.stdout)
            stages.append(rep["timings_s"] | {"llm_status": rep["diagnosis"]["llm"]["status"],
                                              "cached": rep["diagnosis"]["llm"]["cached_prompt_tokens"]})
    print(f"cold start (new process: import, model load with cached sha256, prefix KV state from disk), "
          f"median of 3: {med(ready):.2f} s")
    print(f"`ragecg diagnose --json` in a new process, {len(walls)} records: median {med(walls):.1f} s wall")
    for k in ("quality_s", "measure_s", "criteria_s", "retrieve_s", "compose_s"):
        print(f"  {k}: median {med([st.get(k, 0.0) for st in stages]):.2f} s")
    print(f"  LLM status {[st['llm_status'] for st in stages]}, prefix tokens from disk {[st['cached'] for st in stages]}")
    served_starts(items, exe, flags)


def served_starts(items: list[dict], exe: list[str], flags: list[str]) -> None:
    """The same commands answered by `ragecg serve` (started here on a private socket): the server's
    time from process start to ready (model, prefix state, index, signal stack loaded), and the
    wall time of each one-off `ragecg diagnose --json` it answers, against the same command alone."""
    import json
    import signal
    import subprocess
    import tempfile
    sock_dir = Path(tempfile.mkdtemp(prefix="rgb", dir="/tmp"))
    env = {**os.environ, "RAGECG_SERVER_SOCKET": str(sock_dir / "s.sock")}
    t = time.perf_counter()
    srv = subprocess.Popen(exe + ["serve"], env=env, stderr=subprocess.PIPE, text=True)
    line = srv.stderr.readline()
    ready_s = time.perf_counter() - t
    if "serving on" not in line:
        print(f"`ragecg serve` did not start: {line.strip()}")
        srv.kill()
        return
    walls, alone, same = [], [], 0
    try:
        for item in items:
            t = time.perf_counter()
            out = subprocess.run(exe + ["diagnose", str(item["path"]), "--json", *flags], env=env,
                                 capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref = subprocess.run(exe + ["diagnose", str(item["path"]), "--json", "--local", *flags], env=env,
                                 capture_output=True, text=True)
            alone.append(time.perf_counter() - t)
            if out.returncode == ref.returncode == 0:
                a, b = json.loads(out.stdout), json.loads(ref.stdout)
                same += (a["diagnosis"]["codes"] == b["diagnosis"]["codes"]
                         and a["diagnosis"]["narrative"] == b["diagnosis"]["narrative"])
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=60)
    print(f"`ragecg serve`: process start -> ready (model, prefix state, index, signal stack): {ready_s:.2f} s")
    print(f"`ragecg diagnose --json` answered by it, {len(walls)} records: median {med(walls):.1f} s wall "
          f"(each: {', '.join(f'{w:.1f}' for w in walls)}); the same commands with --local: median "
          f"{med(alone):.1f} s = {med(alone) / med(walls):.2f}x; same codes and narrative {same}/{len(walls)}")


if __name__ == "__main__":
    main()
