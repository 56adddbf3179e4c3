"""Retrieve stage: `Measurements` + `Candidates` -> query lines -> `Evidence` from the knowledge index."""
from .query import build_query, query_lines, retrieve_evidence
from .understand import QueryUnderstanding, search_understood, understand_query

__all__ = ["QueryUnderstanding", "build_query", "query_lines", "retrieve_evidence", "search_understood",
           "understand_query"]
