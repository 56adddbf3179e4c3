"""Latency of one-off commands and of requests served by `ragecg serve`: this checkout against a
baseline checkout, side by side in one run, against the `python -c pass` floor.

    python bench/latency.py --base /path/to/baseline/checkout              # 5 runs, LUDB record 121
    python bench/latency.py --base ../base --runs 7 --record path/to/rec.hea
    python bench/latency.py --base ../base --runs 9 --served-only      # the served rows (and --help, floor)

Every row is a new process, started as the `ragecg` console script starts (`ragecg.cli.entry`),
with the checkout's directory first on PYTHONPATH. Rows: `ragecg diagnose --help`; one-off
`ragecg measure REC --json`; one-off `ragecg diagnose REC --json` with the embedded LLM and with
`--no-llm` (`--local`: no server); the same two `diagnose` commands answered by a running
`ragecg serve` (one server per checkout, each on its own socket, started before the runs); `python
-c "import neurokit2"`; `python -c pass`. The two checkouts alternate row by row (which goes first
alternates run by run), so a machine whose load drifts (shared, noisy) weighs on both alike; compare
ratios. Each checkout has its own RAGECG_HOME (knowledge index, digest and KV-state caches: their
knowledge documents differ, and a shared home would rebuild the index at every alternation); both share one
PYTHONPYCACHEPREFIX (bytecode written once, as an installed package has it), and every command runs
once before the timed runs. Printed per row and checkout: wall seconds min / median / max over the
runs, the median's ratio to the floor's median, the children's CPU seconds (median), and baseline
median / this checkout's median. From the served `--json` reports: the stage times
(`timings_s`) and the LLM call (prompt tokens, of them from the prefix cache, answer tokens,
decode calls, seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from ragecg.cli import entry; sys.argv[0] = 'ragecg'; entry()"


def _env(checkout: Path, home: Path, pycache: Path, socket_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(checkout), RAGECG_HOME=str(home), PYTHONPYCACHEPREFIX=str(pycache),
               RAGECG_SERVER_SOCKET=str(socket_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall s, children's CPU s, stdout) of one command; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"failed ({out.returncode}): {shlex.join(argv)}\n{out.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out.stdout


def _start_server(checkout: Path, env: dict, log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, "serve"], cwd=checkout, env=env,
                            stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if "serving on" in log.read_text():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"ragecg serve ({checkout}) exited {proc.returncode}: {log.read_text()[-1500:]}")
        time.sleep(0.5)
    raise SystemExit(f"ragecg serve ({checkout}) not ready after 600 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _stats(xs: list[float]) -> tuple[float, float, float]:
    return min(xs), statistics.median(xs), max(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the baseline checkout (its ragecg/ is imported)")
    ap.add_argument("--record", type=Path, default=None, help="default: LUDB record 121 under RAGECG_DATA_DIR")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--home", type=Path, default=None, help="folder of the two RAGECG_HOMEs (HOME/base, HOME/new; "
                                                           "default: a temporary folder under /tmp kept between runs)")
    ap.add_argument("--no-serve", action="store_true", help="skip the rows through `ragecg serve`")
    ap.add_argument("--served-only", action="store_true", help="only `--help`, the rows through `ragecg serve` "
                                                               "and the floor (no one-off diagnose or measure)")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from ragecg.settings import get_settings
    record = (args.record or get_settings().data_dir / "ludb" / "data" / "121.hea").resolve()
    home = (args.home or Path(tempfile.gettempdir()) / "ragecg-bench-latency-home").resolve()
    pycache = home / "pycache"
    (home / "run").mkdir(parents=True, exist_ok=True)
    sides = {"base": args.base.resolve(), "new": REPO}
    # one RAGECG_HOME per checkout: their knowledge documents differ, so a shared home would switch the active
    # index at every alternation, and a switch drops the superseded index (a rebuild inside every timed run)
    envs = {name: _env(path, home / name, pycache, home / "run" / f"{name}.sock") for name, path in sides.items()}
    rec = str(record)
    rows = [("ragecg diagnose --help", ["diagnose", "--help"], "local"),
            ("one-off ragecg measure REC --json", ["measure", rec, "--json"], "local"),
            ("one-off ragecg diagnose REC --json (embedded LLM)", ["diagnose", rec, "--json", "--local"], "local"),
            ("one-off ragecg diagnose REC --json --no-llm", ["diagnose", rec, "--json", "--no-llm", "--local"], "local")]
    if args.served_only:
        rows = rows[:1]
    if not args.no_serve:
        rows += [("ragecg diagnose REC --json through ragecg serve", ["diagnose", rec, "--json"], "served"),
                 ("ragecg diagnose REC --json --no-llm through ragecg serve", ["diagnose", rec, "--json", "--no-llm"],
                  "served")]
    plain = [('python -c "import neurokit2"', ["-c", "import neurokit2"]), ("python -c pass (floor)", ["-c", "pass"])]
    if args.served_only:
        plain = plain[1:]

    print(f"command: python bench/latency.py {shlex.join(sys.argv[1:])}")
    print(f"record: {record.name}; runs: {args.runs}; {os.cpu_count()} CPU cores visible; python {sys.version.split()[0]}; "
          f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"base: {sides['base']}  new: {sides['new']}", flush=True)

    servers = {}
    try:
        if not args.no_serve:
            for name, path in sides.items():
                t = time.perf_counter()
                servers[name] = _start_server(path, envs[name], home / f"serve-{name}.log")
                print(f"ragecg serve ({name}) ready in {time.perf_counter() - t:.1f} s", flush=True)
        # warm-up: bytecode, digest cache, index, KV state (not timed)
        for _, argv, _ in rows:
            for name, path in sides.items():
                _timed([sys.executable, "-c", ENTRY, *argv], path, envs[name])
        wall: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        reports: dict[tuple[str, str], list[dict]] = {}
        for run in range(args.runs):
            order = list(sides) if run % 2 == 0 else list(sides)[::-1]
            for label, argv, _ in rows:
                for name in order:
                    w, c, out = _timed([sys.executable, "-c", ENTRY, *argv], sides[name], envs[name])
                    wall.setdefault((label, name), []).append(w)
                    cpu.setdefault((label, name), []).append(c)
                    if "--json" in argv and argv[0] == "diagnose":
                        reports.setdefault((label, name), []).append(json.loads(out))
            for label, argv in plain:
                w, c, _ = _timed([sys.executable, *argv], REPO, envs["new"])
                wall.setdefault((label, "-"), []).append(w)
                cpu.setdefault((label, "-"), []).append(c)
            print(f"run {run + 1}/{args.runs} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for proc in servers.values():
            _stop(proc)

    floor = statistics.median(wall[("python -c pass (floor)", "-")])
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| command | checkout | wall min / median / max (s) | median / floor | CPU median (s) | base / new (median wall) |")
    print("|---|---|---|---:|---:|---:|")
    for label, _, _ in rows:
        for name in sides:
            lo, med, hi = _stats(wall[(label, name)])
            speed = ""
            if name == "new":
                speed = f"**{statistics.median(wall[(label, 'base')]) / med:.2f}x**"
            print(f"| {label} | {name} | {lo:.2f} / {med:.2f} / {hi:.2f} | {med / floor:.1f} | "
                  f"{statistics.median(cpu[(label, name)]):.2f} | {speed} |")
    for label, _ in plain:
        lo, med, hi = _stats(wall[(label, "-")])
        print(f"| {label} | - | {lo:.2f} / {med:.2f} / {hi:.2f} | {med / floor:.1f} | "
              f"{statistics.median(cpu[(label, '-')]):.2f} | |")

    print("\nStages and LLM call in the `--json` reports (medians over the runs):")
    print("| command | checkout | quality / measure / criteria / retrieve / compose (s) | LLM prompt tokens (cached) | "
          "answer tokens (decode calls) | LLM call (s) | TTFT (s) |")
    print("|---|---|---|---|---|---:|---:|")
    for (label, name), reps in reports.items():
        def med(f):
            xs = [f(r) for r in reps if f(r) is not None]
            return statistics.median(xs) if xs else float("nan")
        stages = " / ".join(f"{med(lambda r, k=k: r['timings_s'].get(k)):.3f}"
                            for k in ("quality_s", "measure_s", "criteria_s", "retrieve_s", "compose_s"))
        llm = lambda k: med(lambda r: r["diagnosis"]["llm"].get(k))  # noqa: E731
        print(f"| {label} | {name} | {stages} | {llm('prompt_tokens'):.0f} ({llm('cached_prompt_tokens'):.0f}) | "
              f"{llm('completion_tokens'):.0f} ({llm('decode_calls'):.0f}) | {llm('seconds'):.2f} | {llm('ttft_s'):.2f} |")
    for name in sides:
        key = ("ragecg diagnose REC --json --no-llm through ragecg serve", name)
        if key in wall:
            stage = statistics.median(r["timings_s"]["measure_s"] for r in reports[key])
            print(f"\n{name}: served --no-llm wall median {statistics.median(wall[key]):.2f} s = "
                  f"{statistics.median(wall[key]) / stage:.0f}x the measure stage ({stage * 1000:.0f} ms, in the server)")


if __name__ == "__main__":
    main()
