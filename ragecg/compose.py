"""Stage 6 — compose the diagnosis: the LLM arbitrates among candidate codes and writes the
narrative, citing only evidence keys it was given; without an LLM, the criteria decide."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Sentence(BaseModel):
    text: str
    evidence: list[str] = Field(default_factory=list)   # measurement keys and passage ids


class FinalCode(BaseModel):
    code: str
    description: str
    superclass: str | None = None
    confidence: float
    decided_by: Literal["criteria", "llm", "criteria+llm"] = "criteria"


class LLMInfo(BaseModel):
    status: Literal["ok", "disabled", "timeout", "failed", "invalid"] = "disabled"
    backend: str | None = None
    model: str | None = None
    model_sha256: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float | None = None
    error: str | None = None


class Diagnosis(BaseModel):
    mode: Literal["criteria-only", "llm"]
    codes: list[FinalCode]
    scores: dict[str, float]                   # final per-code score in [0, 1], every known code
    narrative: list[Sentence]
    added_by_llm: list[str] = Field(default_factory=list)
    removed_by_llm: list[str] = Field(default_factory=list)
    stripped_keys: list[str] = Field(default_factory=list)
    stripped_codes: list[str] = Field(default_factory=list)
    llm: LLMInfo = Field(default_factory=LLMInfo)
