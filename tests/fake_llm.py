"""A scripted LLM backend for tests (the LLM interface of ragecg.llm without a model)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ragecg.errors import LLMCallError, LLMTimeoutError
from ragecg.llm.backends import LLMBackend, LLMResult, estimate_tokens

Script = str | BaseException | Callable[[str, str, dict], str]


@dataclass
class FakeBackend(LLMBackend):
    """Scripted responses, in order (the last one repeats). A response is a string, an exception to
    raise, or a function (system, user, schema) -> string. `delay_s` beyond `timeout_s` raises
    LLMTimeoutError, as a real backend would. Every call is recorded in `calls`."""

    responses: list[Script] = field(default_factory=list)
    delay_s: float = 0.0
    name: str = "fake"
    model_id: str = "fake"
    model_sha256: str | None = None
    calls: list[dict] = field(default_factory=list)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def complete_json(self, system: str, user: str, schema: dict, *, max_tokens: int,
                      timeout_s: float) -> LLMResult:
        self.calls.append({"system": system, "user": user, "schema": schema, "max_tokens": max_tokens})
        if self.delay_s > timeout_s:
            raise LLMTimeoutError(f"no complete answer within {timeout_s:g} s")
        if not self.responses:
            raise LLMCallError("FakeBackend has no scripted response")
        r = self.responses[min(len(self.calls), len(self.responses)) - 1]
        if isinstance(r, BaseException):
            raise r
        text = r(system, user, schema) if callable(r) else r
        return LLMResult(text=text, prompt_tokens=estimate_tokens(system + user),
                         completion_tokens=estimate_tokens(text), seconds=self.delay_s, ttft_s=self.delay_s)
