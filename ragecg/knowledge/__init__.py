"""Knowledge stage: the curated documents (parsing, validation, coverage), their chunks, the embedding
model and the FAISS index built from them."""
from .documents import (coverage_table, has_front_matter, knowledge_hash, load_criteria_documents, load_documents,
                        parse_markdown_doc, read_document_text, uncovered_codes, validate_directories,
                        validate_document, validate_documents, validate_knowledge)

__all__ = ["coverage_table", "has_front_matter", "knowledge_hash", "load_criteria_documents", "load_documents",
           "parse_markdown_doc", "read_document_text", "uncovered_codes", "validate_directories", "validate_document",
           "validate_documents", "validate_knowledge"]
