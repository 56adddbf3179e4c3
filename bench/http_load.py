"""Load on the HTTP API (`ragecg serve --http`) on loopback: N uploads of distinct PTB-XL fold-9 records
(100 Hz, WFDB .hea + .dat) from C concurrent clients against one server (one model, one worker thread),
with and without the LLM. Reports per-request latency (p50/p95, upload to answer, 503 retries
included), throughput, how many 503s the bounded queue answered, whether every upload was answered
and whether any answer carried another request's record (source name, and lead II of the returned
signal against the file). Baseline in the same run: the same records diagnosed one after another in
one process without HTTP (`diagnose_ecg`), so the HTTP figures read as ratios.

    python bench/http_load.py                             # 50 uploads, 8 clients, criteria-only
    python bench/http_load.py --llm --uploads 24          # with the embedded LLM
    python bench/http_load.py --queue 4                   # a small queue: 503 + Retry-After, retried

Fold 10 is never read (the records are the first fold-9 ids; no label is read).
"""
from __future__ import annotations

import argparse
import shlex
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import uvicorn  # noqa: E402

from ragecg.pipeline import Resources, diagnose_ecg  # noqa: E402
from ragecg.reading import read_record  # noqa: E402
from ragecg.settings import get_settings  # noqa: E402
from ragecg.app.webapi import create_app  # noqa: E402


def fold9_records(data_dir: Path, n: int) -> list[Path]:
    db = pd.read_csv(data_dir / "ptbxl/ptbxl_database.csv", usecols=["ecg_id", "strat_fold", "filename_lr"])
    rows = db[db.strat_fold == 9].sort_values("ecg_id").head(n)
    return [data_dir / "ptbxl" / f for f in rows.filename_lr]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uploads", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--queue", type=int, default=None, help="RAGECG_HTTP_QUEUE_SIZE for the run (default: setting)")
    ap.add_argument("--llm", action="store_true", help="with the embedded LLM (default: criteria only)")
    ap.add_argument("--baseline", type=int, default=10, help="records diagnosed without HTTP, one after another")
    args = ap.parse_args(argv)

    overrides = {"http_queue_size": args.queue} if args.queue else {}
    settings = get_settings(**overrides)
    records = fold9_records(settings.data_dir, args.uploads)
    resources = Resources(settings=settings, use_llm=args.llm)
    app = create_app(settings, resources)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    t_start = time.perf_counter()
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    ready_s = time.perf_counter() - t_start
    print(f"server ready in {ready_s:.1f} s", file=sys.stderr)

    def one(base: Path):
        files = [("files", (base.name + e, (base.parent / (base.name + e)).read_bytes())) for e in (".hea", ".dat")]
        busy = 0
        t = time.perf_counter()
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                r = http.post("/v1/diagnose", files=files, data={"no_llm": "false" if args.llm else "true"})
                if r.status_code != 503:
                    break
                busy += 1
                time.sleep(min(2.0, float(r.headers.get("retry-after", "1"))))
            latency = time.perf_counter() - t
            ok = r.status_code == 200
            mixed = None
            if ok:
                env = r.json()
                sig = http.get(env["links"]["signal"]).json()
                ecg = read_record(str(base) + ".hea")
                same = env["report"]["source"] == base.name + ".hea" and np.allclose(
                    np.array(sig["leads"]["II"], dtype=float) / 1000, ecg.lead("II"), atol=0.0011)
                mixed = not same
            return {"ok": ok, "status": r.status_code, "latency_s": latency, "busy": busy, "mixed": mixed}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        results = list(pool.map(one, records))
    wall = time.perf_counter() - t0
    server.should_exit = True
    thread.join(timeout=30)

    # baseline: the same pipeline without HTTP, one record after another (resources already loaded)
    base_times = []
    base_res = resources.variant(use_llm=args.llm, use_retrieval=True)
    for base in records[:args.baseline]:
        t = time.perf_counter()
        diagnose_ecg(read_record(str(base) + ".hea"), base_res)
        base_times.append(time.perf_counter() - t)

    lat = [r["latency_s"] for r in results if r["ok"]]
    answered = sum(r["ok"] for r in results)
    mixed = sum(bool(r["mixed"]) for r in results)
    per_record = statistics.median(base_times) if base_times else float("nan")
    mode = "LLM (embedded)" if args.llm else "criteria only"
    print(f"command: python bench/{Path(__file__).name} {shlex.join(argv if argv is not None else sys.argv[1:])}")
    print(f"mode: {mode}; uploads {args.uploads}, clients {args.clients}, queue limit {settings.http_queue_size}")
    print(f"answered 200: {answered}/{len(results)}; other statuses: "
          f"{sorted({r['status'] for r in results if not r['ok']}) or 'none'}; mixed answers: {mixed}")
    print(f"503 (queue full) answers, retried: {sum(r['busy'] for r in results)}")
    print(f"latency p50 {pct(lat, 50):.2f} s, p95 {pct(lat, 95):.2f} s, max {max(lat) if lat else float('nan'):.2f} s")
    print(f"throughput {answered / wall:.2f} records/s ({wall:.1f} s wall)")
    print(f"baseline without HTTP (median of {len(base_times)}, one at a time): {per_record:.2f} s/record; "
          f"HTTP service time per record {wall / max(answered, 1):.2f} s = "
          f"{wall / max(answered, 1) / per_record:.2f}x the baseline")
    return 0 if answered == len(results) and mixed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
