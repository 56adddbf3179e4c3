"""Attacks of issue 22 (hostile input the bad-input corpus lacks), one regression test each: data loss,
invented codes, identifier leaks, crashes, hangs and memory. Every hostile input is generated here,
small; memory bombs are checked to be refused from their headers, before anything is allocated (the
peak RSS of the refusing process is asserted). The table in docs/reliability.md ("Hostile input")
lists each attack, its outcome and its test.
"""
from __future__ import annotations

import base64
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragecg import bounded
from ragecg.knowledge import index as ix
from ragecg.errors import InputError
from ragecg.knowledge import load_criteria_documents, validate_knowledge
from ragecg.settings import get_settings

from .clirun import REPO, run_cli

EXAMPLE = REPO / "examples" / "example_sinus.hea"
FORMATS = "formats"

VALID_DOC = """---
id: user-lbbb
title: Left bundle branch block (local protocol)
codes: {scp: [CLBBB]}
sources:
  - {id: aha2009-part3, cite: "Surawicz B et al. AHA/ACCF/HRS recommendations, part III. Circulation 2009;119:e235-40."}
reviewed: 2026-11-23
version: VERSION
criteria:
  - code: CODE
    conditions:
      - {measure: MEASURE, op: ">=", value: 120, source: aha2009-part3}
---
## Definition
Local text VERSION.
## Criteria
QRS of 120 ms or more.
## Differential
Incomplete block.
## Pitfalls
Paced rhythm.
"""


def _doc(version="1", code="CLBBB", measure="qrs_duration_ms") -> str:
    return VALID_DOC.replace("VERSION", version).replace("CODE", code).replace("MEASURE", measure)


@pytest.fixture
def small(tmp_path, tmp_home):
    """A private home and a one-document curated folder (so builds embed a handful of chunks)."""
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "afib.md").write_text(
        "---\nid: afib\ntitle: Atrial fibrillation\ncodes: {scp: [AFIB]}\nsources:\n  - {id: esc2020, cite: \"ESC 2020.\"}\n"
        "---\n# Atrial fibrillation\n\n## Criteria\nIrregularly irregular RR intervals, no P waves.\n", encoding="utf-8")
    return get_settings(home=tmp_home, knowledge_dirs=[kb]), kb


def _user_files(settings) -> dict[str, bytes]:
    d = settings.user_knowledge
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.is_dir() else {}


def _peak_rss_mb(code: str) -> tuple[str, float]:
    """Run `code` in a fresh interpreter (this worktree's ragecg); its stdout and peak RSS in MiB (VmHWM:
    ru_maxrss would be inherited from this large pytest process across fork and exec)."""
    wrapper = code + ("\nimport re\nhwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
                      "print('RSS', int(hwm.group(1)) / 1024)\n")
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, cwd=REPO, timeout=300)
    out = res.stdout + res.stderr
    m = re.search(r"RSS ([\d.]+)", res.stdout)
    assert m, out[-2000:]
    return out, float(m.group(1))


def _refusal_rss(path: Path, **read_opts) -> tuple[str, float]:
    return _peak_rss_mb(
        "from ragecg.reading import read_record\nfrom ragecg.errors import InputError\n"
        f"try:\n    read_record({str(path)!r}, **{read_opts!r})\n    print('ACCEPTED')\n"
        "except InputError as e:\n    print('REFUSED', e)\n")


# ------------------------------------------------------------------ 1, 13: knowledge add is atomic
def test_add_of_a_broken_new_version_keeps_the_old_one(small, tmp_path, monkeypatch):
    settings, _ = small
    src = tmp_path / "in" / "user-lbbb.md"
    src.parent.mkdir()
    src.write_text(_doc("1"), encoding="utf-8")
    ix.add_documents(settings, [src])
    before = _user_files(settings)
    assert list(before) == ["user-lbbb.md"]
    src.write_text(_doc("2").replace("reviewed: 2026-11-23", "reviewed: [unclosed"), encoding="utf-8")  # broken YAML
    with pytest.raises(InputError, match="YAML"):
        ix.add_documents(settings, [src])
    assert _user_files(settings) == before
    # a valid new version whose build fails (embedding crash) changes nothing either
    src.write_text(_doc("3"), encoding="utf-8")
    monkeypatch.setattr(ix, "embed_texts", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("embedding crashed")))
    with pytest.raises(RuntimeError):
        ix.add_documents(settings, [src])
    monkeypatch.undo()
    assert _user_files(settings) == before
    assert not list(settings.user_knowledge.parent.glob(".*staging*"))
    assert "user-lbbb" in {r["id"] for r in ix.list_documents(settings)}
    assert "user-lbbb" in {d.id for d in load_criteria_documents(settings)}
    src.write_text(_doc("4"), encoding="utf-8")
    ix.add_documents(settings, [src])                       # a good update goes through
    assert b"Local text 4." in _user_files(settings)["user-lbbb.md"]


def test_a_killed_add_leaves_no_file_that_forces_rebuilds(small, tmp_path):
    """`knowledge add` SIGKILLed during its index build (a 50 MB PDF took > 15 min there): no file is
    left in the user folder, the index stays current (no rebuild at the next diagnose), and the
    staging folder it leaves is never read."""
    settings, kb = small
    ix.build_index(settings)
    wanted = ix.current_index_hash(settings)
    src = tmp_path / "slow-guideline.txt"
    src.write_text("A long local guideline about QRS duration.", encoding="utf-8")
    code = ("import os, signal, sys\nimport ragecg.knowledge.index as ix\nfrom ragecg.settings import get_settings\n"
            "ix.build_index = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"ix.add_documents(get_settings(home={str(settings.home)!r}, knowledge_dirs=[{str(kb)!r}]), [{str(src)!r}])\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120)
    assert res.returncode == -9
    assert _user_files(settings) == {}
    assert ix.current_index_hash(settings) == wanted
    assert {d.id for d in load_criteria_documents(settings)} == {"afib"}


def test_knowledge_text_is_capped_per_document(small, tmp_path):
    settings, _ = small
    settings = settings.model_copy(update={"knowledge_max_chars": 20_000})
    big = tmp_path / "big.txt"
    big.write_text("QRS duration. " * 2000, encoding="utf-8")            # 28,000 characters
    with pytest.raises(InputError, match="more than 20,000 characters"):
        ix.add_documents(settings, [big])
    # a 1 KB PDF whose compressed page holds 400,000 characters of text: refused before extraction
    pdf = tmp_path / "bomb.pdf"
    pdf.write_bytes(_text_pdf(400_000))
    assert pdf.stat().st_size < 10_000
    t = time.perf_counter()
    with pytest.raises(InputError, match="more than 20,000 characters"):
        ix.add_documents(settings, [pdf])
    assert time.perf_counter() - t < 30
    assert _user_files(settings) == {}


def _text_pdf(n_chars: int) -> bytes:
    """A one-page PDF whose Flate-compressed content stream shows `n_chars` characters of text."""
    import zlib
    line = b"(QRS duration above 120 ms in leads V5 and V6 is a sign of bundle branch block.) Tj T*\n"
    stream = b"BT /F1 8 Tf 10 800 Td 9 TL\n" + line * (n_chars // 80) + b"ET\n"
    data = zlib.compress(stream, 9)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
             b"/Resources << /Font << /F1 5 0 R >> >> >>"),
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


# ------------------------------------------------------------------ 3, 4, also: what a document is
@pytest.mark.parametrize("code, measure, source, problem", [
    ("ZZTOP", "qrs_duration_ms", None, "not a PTB-XL SCP statement"),
    ("CLBBB", "qrs_wideness_ms", None, "not a measurement key"),
    ("CLBBB", "qrs_duration_ms", "made-up-2025", "not one of the document's sources"),
])
def test_add_validates_user_criteria_like_curated_ones(small, tmp_path, code, measure, source, problem):
    settings, _ = small
    text = _doc(code=code, measure=measure)
    if source:
        text = text.replace("source: aha2009-part3}", f"source: {source}}}")
    if code != "CLBBB":
        text = text.replace("codes: {scp: [CLBBB]}", f"codes: {{scp: [CLBBB, {code}]}}")
    src = tmp_path / "user-lbbb.md"
    src.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(problem)) as exc:
        ix.add_documents(settings, [src])
    assert "fails validation" in str(exc.value)
    assert _user_files(settings) == {}


def test_a_hand_placed_invalid_document_never_reaches_the_criteria(small, data_dir, capsys):
    """Dropped into the user folder by hand (not through `add`): its invented code is never scored,
    and `knowledge validate` covers the user folder."""
    settings, _ = small
    settings.user_knowledge.mkdir(parents=True)
    (settings.user_knowledge / "fake.md").write_text(
        _doc(code="FAKE1", measure="heart_rate_bpm").replace("id: user-lbbb", "id: fake")
        .replace("codes: {scp: [CLBBB]}", "codes: {scp: [FAKE1]}").replace("value: 120", "value: 1"),
        encoding="utf-8")
    (settings.user_knowledge / "plain.md").write_text("# Plain guideline\nno front matter: retrieval text\n")
    ids = {d.id for d in load_criteria_documents(settings)}
    assert "fake" not in ids
    _, problems = validate_knowledge(settings)
    assert any("fake.md" in p and "FAKE1" in p for p in problems)
    assert not any("plain.md" in p for p in problems)
    from ragecg.pipeline import Resources, diagnose_ecg
    from ragecg.reading import read_record
    report = diagnose_ecg(read_record(EXAMPLE), Resources(settings=settings, use_llm=False, use_retrieval=False))
    assert "FAKE1" not in report.model_dump_json()


def test_add_and_the_loader_agree_on_what_a_document_is(small, tmp_path):
    settings, _ = small
    lead_blank = tmp_path / "user-lbbb.md"
    lead_blank.write_text("\n\n" + _doc(), encoding="utf-8")             # front matter after blank lines
    ix.add_documents(settings, [lead_blank])
    assert "user-lbbb" in {d.id for d in load_criteria_documents(settings)}
    latin = tmp_path / "latin.md"
    latin.write_bytes(_doc().replace("user-lbbb", "latin").replace("Local text", "Protocole révisé").encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        ix.add_documents(settings, [latin])
    # placed by hand: the loader warns and goes on (no exit 1/3 for every diagnose)
    shutil.copy(latin, settings.user_knowledge / "latin.md")
    assert "user-lbbb" in {d.id for d in load_criteria_documents(settings)}


def test_readme_and_fifo_are_refused_with_what_is_wrong(small, tmp_path):
    settings, _ = small
    readme = tmp_path / "README.md"
    readme.write_text("# Protocol notes\n", encoding="utf-8")
    with pytest.raises(InputError, match="README.md files are never indexed"):
        ix.add_documents(settings, [readme])
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        ix.add_documents(settings, [fifo])
    from ragecg.reading import read_record
    ecg_fifo = tmp_path / "ecg.xml"
    os.mkfifo(ecg_fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_record(ecg_fifo)


# ------------------------------------------------------------------ 2: same file name in two folders
def test_same_file_name_in_two_folders_gives_two_reports(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        for ext in (".hea", ".dat"):
            shutil.copy(EXAMPLE.with_suffix(ext), tmp_path / "in" / sub / ("example_sinus" + ext))
    out = tmp_path / "out"
    res = run_cli("diagnose", "--no-llm", "--no-retrieval", "--out", str(out), str(tmp_path / "in"))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(out / "summary.csv", encoding="utf-8")))
    assert [r["record"] for r in rows] == ["a/example_sinus.hea", "b/example_sinus.hea"]
    folders = [r["report_folder"] for r in rows]
    assert len(set(folders)) == 2 and all((out / f / "report.pdf").is_file() for f in folders)


# ------------------------------------------------------------------ 5: no free text from files in messages
NAME = "PATIENT JOHN SMITH MRN 4417"


def test_lead_labels_and_units_from_files_are_never_echoed(tmp_path):
    from ragecg.reading.formats._common import build_ecg
    from ragecg.reading.leads import ecg_from_leads
    x = np.zeros(5000)
    with pytest.raises(InputError) as e1:        # no standard lead at all: refused, the label counted
        ecg_from_leads({NAME: x}, 500, source_path="r.xml", source_format="t")
    assert "JOHN" not in str(e1.value) and "1 signal" in str(e1.value)
    # a reduced-lead record with an unrecognised label is read (issue 18); the label is kept nowhere
    ecg = ecg_from_leads({"I": x, "II": x, NAME: x}, 500, source_path="r.xml", source_format="t")
    assert "JOHN" not in repr({k: v for k, v in vars(ecg).items() if k != "signals_mv"})
    with pytest.raises(InputError) as e2:
        build_ecg({NAME: x, "JANE DOE": x}, 500, Path("r.xml"), "t")
    assert "JOHN" not in str(e2.value) and "2 signal(s)" in str(e2.value)
    with pytest.raises(InputError) as e3:
        ecg_from_leads({"I": x, "II": x, "V1": x, "V2": x, "V3": x, "V4": x, "V5": x, "V6": x}, 500,
                       source_path="r.xml", source_format="t", units=NAME)
    assert "JOHN" not in str(e3.value)
    # a real MUSE file whose first LeadID holds a name, and whose data is then damaged
    src = _first(FORMATS, "ge_muse_xml")
    text = src.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"<LeadID>[^<]*</LeadID>", f"<LeadID>{NAME}</LeadID>", text)
    text = re.sub(r"<WaveFormData>", "<WaveFormData>!!", text)
    bad = tmp_path / "muse.xml"
    bad.write_text(text, encoding="utf-8")
    res = run_cli("diagnose", "--no-llm", "--no-retrieval", str(bad), str(EXAMPLE), "--out", str(tmp_path / "o"))
    assert res.returncode == 6
    assert "JOHN" not in res.stderr + res.stdout + (tmp_path / "o" / "summary.csv").read_text()
    assert "lead 1: WaveFormData is not valid base64" in res.stderr


def _first(sub: str, kind: str) -> Path:
    d = get_settings().data_dir / sub / kind
    files = sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []
    if not files:
        msg = f"no {kind} files under {d}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return files[0]


# ------------------------------------------------------------------ 6: deeply nested JSON
def test_bounded_json_refuses_depth_and_size():
    deep = "[" * 200_000 + "]" * 200_000
    for text in (deep, "[" * 100 + "]" * 100, '{"a":' * 80 + "1" + "}" * 80):
        with pytest.raises(ValueError):
            bounded.loads(text, max_bytes=1 << 20)
    with pytest.raises(ValueError):
        bounded.loads("[1]" + " " * 100, max_bytes=50)
    assert bounded.loads('{"a": [1, {"b": 2}]}', max_bytes=100) == {"a": [1, {"b": 2}]}


def test_deep_json_llm_answer_falls_back_to_criteria():
    from ragecg.compose.diagnosis import InvalidAnswer, parse_answer
    with pytest.raises(InvalidAnswer):
        parse_answer("[" * 100_000 + "]" * 100_000, prompt=None)


# ------------------------------------------------------------------ 6, 12: the serve socket
@pytest.fixture
def stub_server(tmp_path):
    import tempfile
    from ragecg.pipeline import Resources
    from ragecg.app.serve import Server
    d = Path(tempfile.mkdtemp(prefix="rgh", dir="/tmp"))
    settings = get_settings(server_socket=d / "s.sock", server_request_timeout_s=1.0)
    server = Server(settings, Resources(settings=settings, use_llm=False, use_retrieval=False), log=lambda m: None)
    server.bind()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.stop()
    time.sleep(0.6)
    shutil.rmtree(d, ignore_errors=True)


def _ask(path: Path, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(payload)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def test_serve_survives_deep_json_and_idle_clients(stub_server):
    path = stub_server.socket_path
    _ask(path, b"[" * 500_000 + b"\n")                    # RecursionError ended the server before
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(path))                                  # connects, sends nothing
    t = time.perf_counter()
    answer = _ask(path, json.dumps({"op": "diagnose", "fingerprint": "other", "job": {}}).encode() + b"\n")
    assert json.loads(answer) == {"mismatch": True}
    assert time.perf_counter() - t < 2.0                     # not held up by the idle client
    idle.settimeout(5.0)
    assert idle.recv(10) == b""                              # the idle client is cut off at the timeout
    idle.close()


# ------------------------------------------------------------------ 11: --llm-timeout is a total deadline
def test_llm_timeout_is_a_total_deadline():
    from ragecg.errors import LLMTimeoutError
    from ragecg.llm.backends import OpenAIServerBackend
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b" ")
            except OSError:
                break
            time.sleep(0.2)                                  # each read succeeds well within the timeout
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    backend = OpenAIServerBackend(f"http://127.0.0.1:{listener.getsockname()[1]}")
    t = time.perf_counter()
    with pytest.raises(LLMTimeoutError):
        backend.complete_json("s", "u", {"type": "object"}, max_tokens=8, timeout_s=1.5)
    assert time.perf_counter() - t < 3.0
    stop.set()
    listener.close()


# ------------------------------------------------------------------ 7: scale factors
@pytest.mark.parametrize("tag, value, match", [("SampleExponent", "400", "SampleExponent"),
                                                ("LeadAmplitudeUnitsPerBit", "1e300", "amplitude scale"),
                                                ("LeadAmplitudeUnitsPerBit", "nan", "amplitude scale")])
def test_absurd_scale_factors_are_refused_quietly(tmp_path, tag, value, match):
    src = _first(FORMATS, "ge_muse_xml")
    text = src.read_text(encoding="utf-8", errors="replace")
    if f"<{tag}>" not in text:
        text = text.replace("<SampleBase>", f"<{tag}>{value}</{tag}><SampleBase>")
    text = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", text)
    bad = tmp_path / "muse.xml"
    bad.write_text(text, encoding="utf-8")
    res = run_cli("measure", str(bad))
    assert res.returncode == 3, res.stderr
    assert match in res.stderr and len(res.stderr.strip().splitlines()) == 1      # no RuntimeWarning line


# ------------------------------------------------------------------ 8, 9: report files
def _report_and_ecg():
    from ragecg.pipeline import Resources, diagnose_ecg
    from ragecg.reading import read_record
    ecg = read_record(EXAMPLE)
    return diagnose_ecg(ecg, Resources(settings=get_settings(), use_llm=False, use_retrieval=False)), ecg


def test_mathtext_in_statements_and_names_does_not_break_the_pdf(tmp_path):
    from ragecg.app.jobs import write_report_files
    report, ecg = _report_and_ecg()
    report = report.model_copy(update={"source": "ecg_$\\frac{1}{$.xml",
                                       "device_statements": ["$x^$ sinus rhythm $", r"\alpha $$ ^_"]})
    write_report_files(report, tmp_path / "r", ecg)
    assert (tmp_path / "r" / "report.pdf").read_bytes().startswith(b"%PDF")


def test_report_files_are_written_all_or_none(tmp_path, monkeypatch):
    import ragecg.render
    from ragecg.app.jobs import RagecgError, write_report_files
    report, ecg = _report_and_ecg()
    monkeypatch.setattr(ragecg.render, "report_to_pdf", lambda *a, **k: (_ for _ in ()).throw(ValueError("mathtext")))
    with pytest.raises(ValueError):
        write_report_files(report, tmp_path / "r", ecg)
    assert not (tmp_path / "r").exists() or list((tmp_path / "r").iterdir()) == []
    monkeypatch.undo()
    real_replace = os.replace
    calls = []

    def full_disk(src, dst):                 # the third rename fails as on a full disk
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(RagecgError, match="No space left"):
        write_report_files(report, tmp_path / "r2", ecg)
    assert not [p for p in (tmp_path / "r2").iterdir() if p.name.endswith(".tmp")]


def test_unwritable_home_is_exit_5_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    env = {"RAGECG_HOME": str(blocker / "home")}             # mkdir fails even for root
    res = run_cli("knowledge", "build", env_extra=env)
    assert res.returncode == 5 and "cannot write the knowledge index" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    doc = tmp_path / "note.txt"
    doc.write_text("A local note about QRS duration.", encoding="utf-8")
    res = run_cli("knowledge", "add", str(doc), env_extra=env)
    assert res.returncode == 5 and "cannot write" in res.stderr, res.stderr
    assert blocker.read_text() == "x"


# ------------------------------------------------------------------ 10: Philips LZW bomb
def _lzw_bomb(n_codes: int) -> bytes:
    """10-bit LZW codes (MSB first, as sierraecg reads them) 0, 256, 257, ...: each new code is the
    previous string plus one byte, so the output grows quadratically, then 767 bytes per code."""
    codes, nxt = [0], 256
    while len(codes) < n_codes:
        codes.append(min(nxt, 1022))
        nxt += 1
    bits = "".join(format(c, "010b") for c in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_philips_lzw_bomb_is_bounded_by_the_header(tmp_path):
    src = next((p for p in sorted((get_settings().data_dir / FORMATS / "philips_xml").glob("*"))
                if 'compressmethod="XLI"' in p.read_text(errors="replace")), None)
    if src is None:
        pytest.fail("no XLI-compressed Philips file in the shared data") if os.environ.get("CI") else pytest.skip("no data")
    payload = _lzw_bomb(8000)                                   # 10 KB -> about 6 MB per lead unbounded
    chunk = len(payload).to_bytes(4, "little") + b"\0\0" + b"\0\0" + payload
    text = src.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"(<parsedwaveforms[^>]*>)[^<]*(</parsedwaveforms>)",
                  lambda m: m.group(1) + base64.b64encode(chunk * 12).decode() + m.group(2), text, flags=re.S)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(text, encoding="utf-8")
    t = time.perf_counter()
    out, rss = _refusal_rss(bomb)
    assert "REFUSED" in out and "more samples than the header announces" in out, out
    assert time.perf_counter() - t < 60 and rss < 600, rss


# ------------------------------------------------------------------ 14: memory bombs refused from headers
def test_wfdb_20khz_600s_is_refused_before_reading(tmp_path):
    n = 20_000 * 600
    hea = tmp_path / "big.hea"
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    hea.write_text(f"big 12 20000 {n}\n" + "".join(f"big.dat 16 1000/mV 16 0 0 0 0 {ld}\n" for ld in leads))
    with open(tmp_path / "big.dat", "wb") as fh:                 # sparse: no disk, no memory
        fh.truncate(n * 12 * 2)
    out, rss = _refusal_rss(hea)
    assert "REFUSED" in out and "samples per lead" in out, out
    assert rss < 600, rss


def test_csv_of_millions_of_rows_is_refused_before_parsing(tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "wb") as fh:
        fh.write(b"I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n")
        fh.write(b"0,0,0,0,0,0,0,0,0,0,0,0\n" * 700_000)
    out, rss = _refusal_rss(path, sampling_rate_hz=500.0)
    assert "REFUSED" in out and "rows" in out, out
    assert rss < 600, rss


def test_xml_of_many_empty_elements_is_refused_before_the_tree(tmp_path):
    path = tmp_path / "many.xml"
    path.write_bytes(b"<?xml version='1.0'?><RestingECG>" + b"<a/>" * 1_000_000 + b"</RestingECG>")
    out, rss = _refusal_rss(path)
    assert "REFUSED" in out and "XML elements" in out, out
    assert rss < 600, rss


def test_npy_truncated_and_huge_are_told_apart_from_pickle(tmp_path):
    from ragecg.reading import read_record
    arr = np.zeros((5000, 12), dtype="<f4")
    good = tmp_path / "a.npy"
    np.save(good, arr)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:10_000])
    with pytest.raises(InputError, match="truncated") as exc:
        read_record(cut, sampling_rate_hz=500)
    assert "pickle" not in str(exc.value)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="needs pickle"):
        read_record(obj, sampling_rate_hz=500)
    huge = tmp_path / "huge.npy"                                  # header says 700,000 x 12, sparse file
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (700_000, 12)})
        fh.truncate(fh.tell() + 700_000 * 12 * 4)
    with pytest.raises(InputError, match="samples per lead"):
        read_record(huge, sampling_rate_hz=20000)


# ------------------------------------------------------------------ also: SCP-ECG CRCs
def test_mutated_scp_ecg_is_refused_by_its_crc(tmp_path):
    from ragecg.reading import read_record
    src = _first(FORMATS, "scp_ecg")
    data = bytearray(src.read_bytes())
    assert read_record(src).n_samples > 0                          # the real file passes its CRCs
    data[5000] ^= 0x01                                             # one bit inside section 6 (rhythm data)
    bad = tmp_path / "bad.scp"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="CRC does not match"):
        read_record(bad)


# ------------------------------------------------------------------ also: one evaluate per run folder
def test_a_second_evaluate_on_the_same_run_folder_is_refused(tmp_path):
    from ragecg.app.eval.runner import prepare_run_dir
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code = ("import sys, time\nfrom ragecg.app.eval.runner import lock_run_dir\n"
            f"lock_run_dir({str(run_dir)!r})\nprint('locked', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="in use by another `ragecg evaluate`"):
            prepare_run_dir(run_dir, {}, 0)
    finally:
        holder.kill()
        holder.wait()
    prepare_run_dir(run_dir, {}, 0)                                # free again once the holder is gone
