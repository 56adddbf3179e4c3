"""Shared fixtures. Data-dependent tests fail (not skip) under CI=true when the data is missing."""
from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own RAGECG_HOME unless it shares the session's prebuilt index."""
    monkeypatch.setenv("RAGECG_HOME", str(tmp_path_factory.mktemp("ragecg_home")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
