"""Shared fixtures. Data-dependent tests fail (not skip) under CI=true when the data is missing."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from ragecg.settings import get_settings


def _data_dir() -> Path:
    return get_settings().data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "ludb").is_dir() or not (d / "ptbxl").is_dir():
        msg = f"public ECG data not found at {d} (set RAGECG_DATA_DIR)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """One RAGECG_HOME for the whole run, so the knowledge index is built once, not per test."""
    return tmp_path_factory.mktemp("ragecg_home")


@pytest.fixture(autouse=True)
def _home(session_home, monkeypatch):
    """Never touch the user's real data dir; tests that change the index use `tmp_home`."""
    monkeypatch.setenv("RAGECG_HOME", str(session_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """A private RAGECG_HOME for tests that add, remove or corrupt index files. Their queries go
    through sentence-transformers (already imported by the index build), so that each private home
    does not export its own ONNX query encoder (tests/test_embed.py covers that)."""
    home = tmp_path / "home"
    monkeypatch.setenv("RAGECG_HOME", str(home))
    monkeypatch.setenv("RAGECG_QUERY_ENCODER", "sentence-transformers")
    return home


@pytest.fixture(scope="session")
def noise_bench():
    """bench/noise.py, loaded from its path (a module called `noise` could be anything on sys.path)."""
    if "ragecg_bench_noise" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "bench" / "noise.py"
        spec = importlib.util.spec_from_file_location("ragecg_bench_noise", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["ragecg_bench_noise"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["ragecg_bench_noise"]
