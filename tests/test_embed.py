"""The query encoder: the model's ONNX export under onnxruntime gives sentence-transformers' vectors,
is verified before use, is rebuilt when corrupt, and spares a `diagnose` process the torch import."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragecg.knowledge import embed
from ragecg.settings import get_settings

QUERIES = ["Complete left bundle branch block: prolonged QRS duration 148 ms, R peak time in V6 72 ms",
           "ECG measurements: heart rate 72 bpm, PR interval 160 ms, QRS duration 88 ms",
           "ST elevation in V1, V2, V3 (ST level at J+60 ms in V2 0.25 mV)", "atrial fibrillation"]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return embed.embedding_model_dir(get_settings())


def test_onnx_vectors_equal_sentence_transformers(model_dir):
    settings = get_settings()
    assert embed.prepare_query_encoder(model_dir, settings)
    path = embed.onnx_encoder_path(settings, embed.embedding_model_sha256(model_dir, settings))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["max_abs_diff_probe"] <= embed.ONNX_TOLERANCE and meta["max_length"] == 256
    onnx_vecs = embed.embed_queries(model_dir, QUERIES, settings)
    torch_vecs = embed.embed_texts(model_dir, QUERIES)
    assert onnx_vecs.shape == torch_vecs.shape == (4, 384) and onnx_vecs.dtype == np.float32
    assert np.abs(onnx_vecs - torch_vecs).max() < embed.ONNX_TOLERANCE
    assert np.allclose(np.linalg.norm(onnx_vecs, axis=1), 1.0, atol=1e-5)


def test_a_corrupt_export_is_not_used_and_is_rebuilt(model_dir, tmp_path, monkeypatch):
    settings = get_settings(cache_dir=tmp_path / "cache")
    assert embed.prepare_query_encoder(model_dir, settings)
    path = embed.onnx_encoder_path(settings, embed.embedding_model_sha256(model_dir, settings))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))                      # a new mtime: the digest cache must not vouch for it
    monkeypatch.setattr(embed, "_ENCODERS", {})    # a new process
    vecs = embed.embed_queries(model_dir, QUERIES[:2], settings)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == embed.file_sha256(path)          # exported again, verified
    assert np.abs(vecs - embed.embed_texts(model_dir, QUERIES[:2])).max() < embed.ONNX_TOLERANCE


def test_a_failed_export_falls_back_once_per_process(model_dir, tmp_path, monkeypatch):
    """Without a usable exporter the queries still work (sentence-transformers), and the export is
    not retried for every query of a batch."""
    settings = get_settings(cache_dir=tmp_path / "cache")
    monkeypatch.setattr(embed, "_ENCODERS", {})
    monkeypatch.setattr(embed, "_FAILED", set())
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise embed.ModelError("ONNX export of the embedding model failed (ImportError)")
    monkeypatch.setattr(embed, "export_onnx_encoder", broken)
    for _ in range(3):
        vecs = embed.embed_queries(model_dir, QUERIES[:2], settings)
        assert np.abs(vecs - embed.embed_texts(model_dir, QUERIES[:2])).max() == 0.0
    assert len(calls) == 1


def test_an_unwritable_cache_falls_back_to_sentence_transformers(model_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    settings = get_settings(cache_dir=blocker)
    monkeypatch.setattr(embed, "_ENCODERS", {})
    monkeypatch.setattr(embed, "_FAILED", set())
    vecs = embed.embed_queries(model_dir, QUERIES[:1], settings)
    assert np.abs(vecs - embed.embed_texts(model_dir, QUERIES[:1])).max() == 0.0


def test_sentence_transformers_setting_skips_the_export(model_dir, tmp_path, monkeypatch):
    settings = get_settings(cache_dir=tmp_path / "cache", query_encoder="sentence-transformers")
    monkeypatch.setattr(embed, "_ENCODERS", {})
    vecs = embed.embed_queries(model_dir, QUERIES[:1], settings)
    assert vecs.shape == (1, 384) and not (tmp_path / "cache" / "onnx").exists()


def test_only_mean_pooled_normalised_models_are_exported(tmp_path):
    d = tmp_path / "model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "tokenizer.json").write_text("{}")
    (d / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (d / "modules.json").write_text(json.dumps(modules))
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}')
    assert embed.mean_pooled_max_length(d) == 128
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": false, "pooling_mode_cls_token": true}')
    assert embed.mean_pooled_max_length(d) is None
    (d / "modules.json").write_text(json.dumps(modules[:2]))          # no Normalize
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert embed.mean_pooled_max_length(d) is None


def test_diagnose_with_retrieval_does_not_import_torch(data_dir, model_dir, tmp_path):
    """Once the encoder is exported, a new process retrieves passages without torch or
    sentence-transformers (the ~9 s import that dominated a cold `ragecg diagnose`)."""
    from ragecg.knowledge.index import ensure_index
    settings = get_settings()
    ensure_index(settings)                          # built here (building needs torch), loaded there
    assert embed.prepare_query_encoder(model_dir, settings)
    rec = data_dir / "ptbxl" / "records100" / "00000" / "00010_lr.hea"
    code = ("import sys, json; from ragecg.cli import main; sys.argv = ['ragecg', 'diagnose', sys.argv[1], '--json', "
            "'--no-llm']\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(rec)], capture_output=True, text=True,
                         env=os.environ | {"RAGECG_HOME": str(settings.home)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    *report_lines, modules = out.stdout.strip().splitlines()
    assert json.loads(modules) == []
    report = json.loads("\n".join(report_lines))
    assert len(report["evidence"]["passages"]) >= 3 and report["versions"]["index_hash"]
