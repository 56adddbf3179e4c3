"""Retrieve stage: `Measurements` + `Candidates` -> query lines -> `Evidence` from the knowledge index."""
from .query import build_query, query_lines, retrieve_evidence

__all__ = ["build_query", "query_lines", "retrieve_evidence"]
