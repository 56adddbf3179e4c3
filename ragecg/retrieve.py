"""Stage 5 — retrieval: a query built from the measurements and candidate codes, searched in the
knowledge index; the result is the `Evidence` the composer may cite (passage ids and measurement keys)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from .criteria import Candidates
from .measure import Measurements


class Passage(BaseModel):
    passage_id: str          # "<doc_id>#<n>", unique in an index; never contains '[' 
    doc_id: str
    section: str = ""
    text: str
    source: str = ""          # citation(s) of the document
    similarity: float = 0.0


class Evidence(BaseModel):
    query: str
    passages: list[Passage] = Field(default_factory=list)
    measurements: dict[str, float | int | bool] = Field(default_factory=dict)  # evidence key -> value

    def keys(self) -> set[str]:
        """Every key a narrative sentence may cite."""
        return set(self.measurements) | {p.passage_id for p in self.passages}
