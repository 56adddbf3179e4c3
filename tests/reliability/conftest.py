"""Fixtures of the reliability suite: the corpus built once per session and run once through the CLI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .clirun import run_batch
from .corpus import KINDS, build, write_record, base_signal

# Kinds that must work and are run through `diagnose --no-llm` in the fast suite (all of them: slow).
DIAGNOSE_OK_FAST = ("dc_offset", "mains_50hz_heavy", "eight_leads", "unicode_long_path", "la_ra_reversal",
                    "paced_spikes", "dat_longer")


@pytest.fixture(scope="session")
def cli_env(session_home) -> dict:
    """Environment for CLI subprocesses started from session fixtures (before the autouse _home runs)."""
    return {"RAGECG_HOME": str(session_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "RAGECG_DEBUG": "0"}


@pytest.fixture(scope="session")
def corpus(data_dir, tmp_path_factory) -> dict[str, Path]:
    """Every kind of bad input, plus the clean base record ("clean"), built in a session tmp dir."""
    root = tmp_path_factory.mktemp("corpus")
    paths = {k.name: build(k, root, data_dir) for k in KINDS}
    paths["clean"] = write_record(root / "clean", "clean", base_signal(str(data_dir)).copy())
    return paths


@pytest.fixture(scope="session")
def measure_results(corpus, cli_env) -> dict[str, dict]:
    """`ragecg measure --json PATH` for every kind (one batch process, `ragecg.cli.main` per kind)."""
    names = list(corpus)
    res = run_batch([["measure", "--json", str(corpus[n])] for n in names], env_extra=cli_env)
    return dict(zip(names, res))


@pytest.fixture(scope="session")
def diagnose_error_results(corpus, cli_env) -> dict[str, dict]:
    """`ragecg diagnose --no-llm PATH` for every kind that must fail."""
    names = [k.name for k in KINDS if k.exit_code != 0]
    res = run_batch([["diagnose", "--no-llm", str(corpus[n])] for n in names], env_extra=cli_env)
    return dict(zip(names, res))


def run_diagnose_json(corpus, cli_env, names) -> dict[str, dict]:
    res = run_batch([["diagnose", "--no-llm", "--json", str(corpus[n])] for n in names], env_extra=cli_env,
                    timeout=1800)
    return dict(zip(names, res))


def shown_name(path: Path) -> str:
    return os.path.basename(str(path))
