"""Retrieval: a query built from the measurements and candidate codes, searched in the
knowledge index; the result is the `Evidence` the composer may cite (passage ids and measurement keys).

The query is findings in words with their values ("prolonged QRS duration 148 ms, R peak time in V6
72 ms"): one line per leading candidate code (its description and the measured values that decided
its criteria; codes whose defining documents are already queried are skipped, so tied codes of one
document leave room for others), and a last line of the core measurements. Each line is searched
separately (short queries stay inside the embedding model's 256-token window and one candidate cannot
drown another). Each candidate first gets the passage most similar to its line among the documents
that define it (`CodeCandidate.doc_ids`, a metadata filter); then the open hits of all lines follow
round-robin in line order, passages of documents not yet represented first, without duplicates.
"""
from __future__ import annotations

from ragecg.values import (STANDARD_LEADS, Candidates, CodeCandidate, ConditionResult, Evidence, Measurements, Passage,
                           describe_value)

QUERY_CANDIDATES = 5          # candidate codes (best first, distinct documents) that get a query line each
CORE_KEYS = ("heart_rate_bpm", "pr_interval_ms", "qrs_duration_ms", "qtc_bazett_ms", "qrs_axis_deg",
             "p_present")


def finding_words(cond: ConditionResult) -> str | None:
    """One criterion's deciding measurement as a finding in words, or None when not measured."""
    if cond.value is None:
        return None
    key = cond.evidence_key
    value = cond.value
    name = cond.measure
    leads = sorted(cond.leads_met, key=lambda ld: STANDARD_LEADS.index(ld) if ld in STANDARD_LEADS else 99)
    where = f" in {', '.join(leads)}" if len(leads) > 1 else ""
    if isinstance(value, bool):
        return describe_value(key, value)
    if name.startswith("st_j") and value != 0:
        return f"ST {'elevation' if value > 0 else 'depression'}{where} ({describe_value(key, value)})"
    if name == "t_amplitude_mv" and value < 0:
        return f"T wave inversion{where} ({describe_value(key, value)})"
    qualifier = ""                          # words only where the direction is unambiguous
    if name.endswith("_ms") and cond.op in (">", ">="):
        qualifier = "prolonged "
    elif name.endswith("_mv") and cond.op in (">", ">=") and value > 0:
        qualifier = "increased "
    elif name.endswith("_mv") and cond.op in ("<", "<="):
        qualifier = "deep " if value < 0 else "low "
    text = qualifier + describe_value(key, value)
    return text + (f" ({where.strip()})" if where else "")


def _candidate_line(c: CodeCandidate) -> str:
    met = [r for r in c.conditions if r.met] or c.conditions
    findings = list(dict.fromkeys(f for r in met if (f := finding_words(r))))
    return f"{c.description}: {', '.join(findings)}" if findings else c.description


def query_lines(measurements: Measurements, candidates: Candidates) -> list[tuple[str, list[str]]]:
    """(query line, documents defining its candidate) pairs: one per leading candidate (fired codes
    best first; with none fired, the best-scoring codes; a code whose documents are all already
    queried is skipped, so tied codes of one document do not crowd out others), then the core
    measurements (no documents)."""
    lines: list[tuple[str, list[str]]] = []
    ranked = [c for c in candidates.candidates if c.fired] or candidates.candidates
    covered: set[str] = set()
    chosen: list[CodeCandidate] = []
    for c in ranked:
        if len(chosen) == QUERY_CANDIDATES:
            break
        if c.doc_ids and set(c.doc_ids) <= covered:
            continue        # a code defined by documents already queried (tied codes of one document)
        covered |= set(c.doc_ids)
        chosen.append(c)
        lines.append((_candidate_line(c), list(c.doc_ids)))
    core = [describe_value(k, v) for k in CORE_KEYS if (v := measurements.get(k)) is not None]
    if core:
        lines.append(("ECG measurements: " + ", ".join(core), []))
    seen: set[str] = set()
    return [(q, d) for q, d in lines if q.strip() and not (q in seen or seen.add(q))]


def build_query(measurements: Measurements, candidates: Candidates) -> str:
    """The retrieval query: findings in words with values, one line per leading candidate, then the
    core measurements (see `query_lines`)."""
    return "\n".join(q for q, _ in query_lines(measurements, candidates))


def retrieve_evidence(index, measurements: Measurements, candidates: Candidates, k: int) -> Evidence:
    """Up to k passages, deduplicated, in this order: for each candidate line, the passage of the
    documents defining that candidate most similar to the line; then the open-search hits of every
    line (any document, user-added ones included) merged round-robin in line order, first only
    passages of documents not yet represented (so the composer sees the alternatives), then the rest."""
    lines = query_lines(measurements, candidates)
    evidence = Evidence(query="\n".join(q for q, _ in lines), measurements=measurements.flat())
    if index is None or not lines or k <= 0:
        return evidence
    queries = [q for q, _ in lines]
    own_lines = [i for i, (_, docs) in enumerate(lines) if docs]
    hits = index.search_many(queries + [queries[i] for i in own_lines], k,
                             [None] * len(lines) + [lines[i][1] for i in own_lines])
    own, free = hits[len(lines):], hits[:len(lines)]
    seen: set[str] = set()

    def take(p: Passage) -> None:
        if p.passage_id not in seen and len(evidence.passages) < k:
            seen.add(p.passage_id)
            evidence.passages.append(p)

    for per_line in own:
        if per_line:
            take(per_line[0])
    docs_in = {p.doc_id for p in evidence.passages}
    for new_docs_only in (True, False):       # first one passage per further document, then the rest
        for rank in range(k):
            for per_line in free:
                if rank < len(per_line) and (not new_docs_only or per_line[rank].doc_id not in docs_in):
                    take(per_line[rank])
                    docs_in.add(per_line[rank].doc_id)
    return evidence
