"""LLM stage: the backends that answer a prompt with JSON under a schema (llama.cpp in-process, an
OpenAI-compatible server; tests script a fake one, tests/fake_llm.py), chosen from the settings in one
place (`load_backend`)."""
from .backends import LLMBackend, LLMResult, list_backends, load_backend

__all__ = ["LLMBackend", "LLMResult", "list_backends", "load_backend"]
