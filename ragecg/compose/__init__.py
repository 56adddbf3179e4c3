"""Compose stage: measurements, quality, candidates and evidence -> `Diagnosis` (the prompt, the LLM's
bounded arbitration among the candidate codes, grounded narrative; criteria-only without an LLM)."""
from .decision import decide
from .diagnosis import compose_diagnosis, criteria_only
from .prompt import system_prompt

__all__ = ["compose_diagnosis", "criteria_only", "decide", "system_prompt"]
