"""Knowledge stage: the curated documents (parsing, validation, coverage), their chunks, the embedding
model and the FAISS index built from them."""
from .documents import (STATEMENT_LOGIC_FILE, coverage_table, has_front_matter, knowledge_hash, load_criteria_documents,
                        load_documents, load_statement_logic, parse_markdown_doc, parse_statement_logic,
                        read_document_text, uncovered_codes, validate_directories, validate_document,
                        validate_documents, validate_knowledge, validate_statement_logic)

__all__ = ["STATEMENT_LOGIC_FILE", "coverage_table", "has_front_matter", "knowledge_hash", "load_criteria_documents",
           "load_documents", "load_statement_logic", "parse_markdown_doc", "parse_statement_logic",
           "read_document_text", "uncovered_codes", "validate_directories", "validate_document",
           "validate_documents", "validate_knowledge", "validate_statement_logic"]
