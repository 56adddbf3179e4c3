"""Stage 7 — the report: one pydantic value, rendered as JSON (published schema), Markdown or HTML."""
from __future__ import annotations

from pydantic import BaseModel, Field

from .compose import Diagnosis
from .criteria import CodeCandidate
from .measure import Measurements
from .quality import Quality
from .retrieve import Evidence

DISCLAIMER = ("Machine-generated interpretation (ragecg). Not a diagnosis: it must be over-read and "
              "confirmed by a qualified physician before any clinical use.")
SCHEMA_VERSION = "1"


class VersionInfo(BaseModel):
    package: str
    knowledge_hash: str | None = None
    index_hash: str | None = None
    embedding_model: str | None = None
    model: str | None = None
    model_sha256: str | None = None


class Report(BaseModel):
    schema_version: str = SCHEMA_VERSION
    source: str                                  # file name only (no directories, no patient data)
    source_format: str
    sampling_rate_hz: float
    duration_s: float
    derived_leads: list[str] = Field(default_factory=list)
    measurements: Measurements
    quality: Quality
    candidate_scores: dict[str, float]           # criteria score of every known code
    criteria: list[CodeCandidate]                # candidates with score >= 0.1 and their conditions
    diagnosis: Diagnosis
    evidence: Evidence
    versions: VersionInfo
    timings_s: dict[str, float] = Field(default_factory=dict)
    device_statements: list[str] = Field(default_factory=list)
    disclaimer: str = DISCLAIMER


def report_json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ragecg.invalid/schema/report-v1.json"
    return schema
