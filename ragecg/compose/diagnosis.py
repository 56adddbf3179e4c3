"""Compose the diagnosis: the statements the decision layer (decision.py) made definite or
borderline, optionally arbitrated by the LLM, and the narrative citing only evidence keys it was given.

Criteria-only (no backend, or the LLM call timed out / failed / answered invalid JSON): the chosen codes
are the decision layer's definite statements (plus NORM for a Normal / Otherwise normal ECG), the
borderline statements are listed apart and printed as "borderline ...", the scores are the criteria
scores, and the narrative comes from templates, each sentence citing the measurement keys and passage
ids it states; the conclusion ends with the overall category and the statements that decided it.

With a backend:

* Offered codes and prompt: ragecg/compose/prompt.py. The definite then borderline statements (best
  MAX_OFFERED_CODES); the output schema names only these, so the LLM cannot add a statement the
  criteria did not make — small models tend to answer "AF" for everything.
  A static prefix first (kept in llama.cpp's KV cache and on disk, ragecg/llm), then the record's part.
* The LLM keeps or drops each offered statement; a kept statement keeps its definite / borderline
  status and the category is recomputed without the dropped ones. Scores move by the bounded rule of
  `combine_scores`: with s the criteria score and q the LLM's confidence, "absent" (q < LLM_ACCEPT = 0.5)
  gives max(0, s - LLM_ADJUSTMENT * (1 - q)), "present" min(1, s + LLM_ADJUSTMENT * q),
  LLM_ADJUSTMENT = 0.15 (a design bound, not tuned). A statement is dropped when its score falls below
  0.5, so the LLM can drop only statements with s < 0.65 (near their thresholds: in practice the
  borderline ones) and cannot add any (a code the decision layer did not state is not offered).
* Post-processing (as paper-qa does for citations): codes outside the offered set and evidence keys
  not shown in the prompt are removed and counted; a sentence is dropped when no valid key is left,
  when it states a number that is neither a value of a key it cites, a threshold shown for that
  measure, nor a number of a passage it cites, or when it names a code that is not reported.
* Narrative in clinical order (rhythm, rate, intervals, axis, morphology, conclusion): the LLM's
  grounded sentences for the sections it covered, template sentences for the others; the
  conclusion always lists the final codes and the category; the last sentence is the standard caution.
"""
from __future__ import annotations

import re

from pydantic import BaseModel

from ragecg import bounded
from ragecg.errors import LLMTimeoutError
from ragecg.settings import LlmSettings, Settings
from ragecg.values import (BEATS_DISPUTED, FIRE_THRESHOLD, Candidates, Category, CodeCandidate, Decisions, Diagnosis,
                           Evidence, FinalCode, LLMInfo, Measurements, Passage, Quality, Sentence, StatementLogic,
                           scp_codes)

from .decision import decide, without
from .prompt import (DEFAULT_PROMPT_TOKENS, LLM_ADJUSTMENT, SECTIONS, SENTENCE_MAX_CHARS, Prompt, build_prompt,
                     condition_keys, format_value, numbers_in, offered_candidates, output_schema, with_unit)

LLM_ACCEPT = 0.5
MAX_ANSWER_CHARS = 1 << 20     # an answer of llm_max_tokens tokens is a few KiB; longer is not an answer
MIN_SENTENCE_WORDS = 3
CAUTION = ("This interpretation is machine-generated from automated measurements and must be "
           "over-read by a physician before any clinical use.")


def _passages_of(c: CodeCandidate, passages: list[Passage]) -> list[str]:
    return [p.passage_id for p in passages if p.doc_id in c.doc_ids]


def _is_rhythm(code: str) -> bool:
    return "rhythm" in (scp_codes().get(code, {}).get("kinds") or [])


def _description(code: str) -> str:
    return scp_codes().get(code, {}).get("description", code)


# --------------------------------------------------------------------------- templates

def _condition_text(c: CodeCandidate) -> str:
    parts = []
    for r in c.conditions:
        if not r.met or r.value is None:
            continue
        key = r.evidence_key
        thr = format_value(key, r.threshold if isinstance(r.threshold, bool) else float(r.threshold))
        parts.append(f"{key} {with_unit(key, r.value)} ({r.op} {thr}, {r.source})")
    return "; ".join(parts)


def _said(c: CodeCandidate, borderline: set[str]) -> str:
    return f"borderline {c.description}" if c.code in borderline else c.description


def template_sentences(m: Measurements, codes: list[CodeCandidate], passages: list[Passage],
                       borderline: set[str] | frozenset = frozenset()) -> list[Sentence]:
    """Deterministic sentences for rhythm, rate, intervals, axis and morphology; a code in `borderline`
    is stated as "borderline <statement>"."""
    out: list[Sentence] = []
    flat = m.flat()

    def measured(*keys: str) -> list[str]:
        return [k for k in keys if k in flat]

    rhythm = [c for c in codes if _is_rhythm(c.code)]
    disputed = m.uncertain.get("heart_rate_bpm", "").startswith(BEATS_DISPUTED)
    if disputed and not rhythm:
        out.append(Sentence(section="rhythm", evidence=["heart_rate_bpm"],
                            text="Rhythm: not interpreted: the beats are not confirmed by most leads (artefact may add "
                                 "or hide beats; see signal quality)."))
    elif rhythm:
        for c in rhythm:
            detail = _condition_text(c)
            out.append(Sentence(section="rhythm", text=f"Rhythm: {_said(c, borderline)} ({c.code})"
                                + (f": {detail}." if detail else "."),
                                evidence=condition_keys(c) + _passages_of(c, passages)))
    else:
        keys = measured("rr_cv", "p_present")
        if keys:
            vals = ", ".join(f"{k} {with_unit(k, flat[k])}" for k in keys)
            out.append(Sentence(section="rhythm", text=f"Rhythm: no rhythm statement met its criteria ({vals}).",
                                evidence=keys))
    if "heart_rate_bpm" in flat:
        rate = f"Heart rate {with_unit('heart_rate_bpm', flat['heart_rate_bpm'])}"
        out.append(Sentence(section="rate", evidence=["heart_rate_bpm"],
                            text=rate + (" from the detected beats, uncertain." if disputed else ".")))
    names = {"pr_interval_ms": "PR interval", "qrs_duration_ms": "QRS duration", "qt_interval_ms": "QT interval",
             "qtc_bazett_ms": "QTc (Bazett)", "qtc_fridericia_ms": "QTc (Fridericia)"}
    keys = measured(*names)
    if keys:
        out.append(Sentence(section="intervals", evidence=keys,
                            text="Intervals: " + ", ".join(f"{names[k]} {with_unit(k, flat[k])}" for k in keys) + "."))
    axes = {"p_axis_deg": "P", "qrs_axis_deg": "QRS", "t_axis_deg": "T"}
    keys = measured(*axes)
    if keys:
        out.append(Sentence(section="axis", evidence=keys,
                            text="Frontal plane axis: " + ", ".join(f"{axes[k]} {format_value(k, flat[k])} degrees"
                                                                    for k in keys) + "."))
    for c in codes:
        if _is_rhythm(c.code) or c.code == "NORM":
            continue
        detail = _condition_text(c)
        said = _said(c, borderline)
        out.append(Sentence(section="morphology", text=f"{said[:1].upper()}{said[1:]} ({c.code})"
                            + (f": {detail}." if detail else "."),
                            evidence=condition_keys(c) + _passages_of(c, passages)))
    return out


def conclusion_sentence(final: list[FinalCode], candidates: Candidates, m: Measurements,
                        borderline: list[FinalCode] | None = None, category: Category | None = None) -> Sentence:
    """The conclusion: the chosen statements, the borderline ones (as such) and the overall category with
    the statements that decided it."""
    by_code = {c.code: c for c in candidates.candidates}
    borderline = borderline or []
    keys: list[str] = []
    for f in [*final, *borderline]:
        if f.code in by_code:
            keys.extend(condition_keys(by_code[f.code]))
    parts = [f"{f.description} ({f.code})" for f in final if f.code != "NORM"]
    parts += [f"borderline {f.description} ({f.code})" for f in borderline]
    text = "Conclusion: " + ("; ".join(parts) + ". " if parts else "")
    if category is not None:
        text += category.text + "."
    elif not parts:
        text += "no diagnostic statement met its published criteria."
    if not keys:  # codes added by the LLM from nearly-met criteria: cite what was measured
        for f in final:
            if f.code in by_code:
                keys.extend(k for k in condition_keys(by_code[f.code], met_only=False) if k in m.flat())
    if not keys:
        keys = [k for k in ("heart_rate_bpm", "qrs_duration_ms", "pr_interval_ms") if k in m.flat()]
    return Sentence(section="conclusion", text=text.strip(), evidence=list(dict.fromkeys(keys)))


def _valid_only(sentences: list[Sentence], valid: set[str]) -> list[Sentence]:
    out = []
    for s in sentences:
        keys = [k for k in dict.fromkeys(s.evidence) if k in valid]
        if keys:
            out.append(s.model_copy(update={"evidence": keys}))
    return out


def _ordered(sentences: list[Sentence]) -> list[Sentence]:
    rank = {s: i for i, s in enumerate(SECTIONS)}
    return sorted(sentences, key=lambda s: rank.get(s.section or "morphology", 4))  # stable


def _final_codes(scores: dict[str, float], decided: dict[str, str], codes: list[str] | None = None) -> list[FinalCode]:
    """FinalCode rows for `codes` (default: every code scored >= 0.5), rhythm first."""
    table = scp_codes()
    if codes is None:
        codes = [c for c, s in scores.items() if s >= FIRE_THRESHOLD]
    final = [FinalCode(code=c, description=table.get(c, {}).get("description", c),
                       superclass=table.get(c, {}).get("superclass"), confidence=round(scores.get(c, 0.0), 4),
                       decided_by=decided.get(c, "criteria"))
             for c in codes]
    final.sort(key=lambda f: (0 if _is_rhythm(f.code) else 1, -f.confidence, f.code))
    return final


def default_decisions(measurements: Measurements, candidates: Candidates,
                      logic: StatementLogic | None = None) -> Decisions:
    """The decision layer for a caller that gives no decisions (the pipeline gives them, with the curated
    statement logic it loaded)."""
    return decide(candidates, measurements, logic)


def _from_decisions(measurements: Measurements, candidates: Candidates, evidence: Evidence, decisions: Decisions,
                    scores: dict[str, float], decided: dict[str, str]) -> tuple[list[FinalCode], list[FinalCode], list[Sentence]]:
    """Final and borderline codes and the template sentences of a set of decisions."""
    final = _final_codes(scores, decided, decisions.chosen())
    borderline = _final_codes(scores, decided, decisions.borderline())
    stated = {*decisions.definite(), *decisions.borderline()}
    cands = [c for c in candidates.candidates if c.code in stated]
    sentences = template_sentences(measurements, cands, evidence.passages, set(decisions.borderline()))
    return final, borderline, sentences


def criteria_only(measurements: Measurements, candidates: Candidates, evidence: Evidence,
                  llm: LLMInfo | None = None, decisions: Decisions | None = None) -> Diagnosis:
    """The diagnosis the criteria and the decision layer alone give (also the fallback when the LLM fails)."""
    decisions = decisions or default_decisions(measurements, candidates)
    scores = dict(candidates.scores)
    final, borderline, sentences = _from_decisions(measurements, candidates, evidence, decisions, scores, {})
    valid = evidence.keys() | set(measurements.flat())
    sentences.append(conclusion_sentence(final, candidates, measurements, borderline, decisions.category))
    narrative = _ordered(_valid_only(sentences, valid))
    narrative.append(Sentence(section="caution", text=CAUTION))
    return Diagnosis(mode="criteria-only", codes=final, borderline=borderline, category=decisions.category,
                     suppressed=decisions.suppressed, scores=scores, narrative=narrative, llm=llm or LLMInfo())


# --------------------------------------------------------------------------- the LLM answer

class ParsedAnswer(BaseModel):
    confidence: dict[str, float]              # offered code -> LLM confidence
    sentences: list[Sentence]
    stripped_codes: list[str]
    stripped_keys: list[str]
    dropped: dict[str, int]
    truncated: bool = False
    sentences_raw: int = 0
    sentences_keys_valid: int = 0


class InvalidAnswer(ValueError):
    pass


_LEADS_AND_MIXED = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*\d)[\w\[\]()/]+")   # V1, 1AVB, st_j60_mv[V2], 12-lead part


def ungrounded_numbers(text: str, cited: list[str], allowed: dict[str, list[float]]) -> list[float]:
    """Numbers stated in `text` that none of its cited keys grounds (values shown as the key's
    value, thresholds shown for its measure, numbers in a cited passage)."""
    clean = re.sub(r"\b\d+\s*-\s*leads?\b", " ", text)
    clean = re.sub(r"(\d)(ms|mV|mv|bpm|deg|s|mm)\b", r"\1 \2", clean)
    clean = _LEADS_AND_MIXED.sub(" ", clean)
    pool = [v for k in cited for v in allowed.get(k, [])]
    bad = []
    for x in numbers_in(clean):
        if not any(abs(abs(x) - abs(a)) <= max(0.011, 0.006 * abs(a)) for a in pool):
            bad.append(x)
    return bad


def _load_answer(text: str) -> tuple[dict, bool]:
    """The answer as JSON valid under the generic schema, and whether it had to be cut: an answer
    stopped by the token limit inside the narrative keeps its codes and its complete sentences."""
    import jsonschema   # third-party, lazy: imported when an LLM answer is checked

    def valid(t: str) -> dict | None:
        try:
            d = bounded.loads(t, max_bytes=MAX_ANSWER_CHARS)     # deep nesting: ValueError, not RecursionError
            jsonschema.validate(d, output_schema())
            return d
        except (ValueError, jsonschema.ValidationError):
            return None

    data = valid(text)
    if data is not None:
        return data, False
    start = text.find('"narrative"')
    if start >= 0:
        cuts = [i for i in range(len(text) - 1, start, -1) if text[i] in "}["][:64]
        for i in cuts:
            d = valid(text[: i + 1] + ("]}" if text[i] == "}" else "]}"))
            if d is not None:
                return d, True
    try:
        jsonschema.validate(bounded.loads(text, max_bytes=MAX_ANSWER_CHARS), output_schema())
    except (ValueError, jsonschema.ValidationError) as e:
        msg = e.message if isinstance(e, jsonschema.ValidationError) else str(e)
        raise InvalidAnswer(msg.splitlines()[0][:200]) from None
    raise InvalidAnswer("answer is not valid JSON under the schema")  # pragma: no cover


def parse_answer(text: str, prompt: Prompt) -> ParsedAnswer:
    """Validate the answer against the generic schema; strip invented codes and keys; drop
    sentences left without valid keys or stating ungrounded numbers."""
    data, truncated = _load_answer(text)
    offered = set(prompt.offered_codes)
    confidence: dict[str, float] = {}
    stripped_codes: list[str] = []
    for code, conf in data["codes"].items():
        if code not in offered:
            stripped_codes.append(code)
            continue
        confidence[code] = min(1.0, max(0.0, float(conf)))
    valid = set(prompt.keys) | set(prompt.passage_ids)
    stripped_keys: list[str] = []
    dropped: dict[str, int] = {}
    sentences: list[Sentence] = []
    all_valid = 0
    for item in data["narrative"]:
        keys = list(dict.fromkeys(item["evidence"]))
        stripped_keys.extend(k for k in keys if k not in valid)
        all_valid += all(k in valid for k in keys)
        keys = [k for k in keys if k in valid]
        text_ = " ".join(item["text"].split())[:SENTENCE_MAX_CHARS]
        if not text_:
            dropped["empty"] = dropped.get("empty", 0) + 1
        elif len(re.findall(r"[A-Za-z]{2,}", text_)) < MIN_SENTENCE_WORDS:
            dropped["too_short"] = dropped.get("too_short", 0) + 1
        elif not keys:
            dropped["no_valid_evidence"] = dropped.get("no_valid_evidence", 0) + 1
        elif ungrounded_numbers(text_, keys, prompt.allowed_numbers):
            dropped["ungrounded_number"] = dropped.get("ungrounded_number", 0) + 1
        elif any(s.text == text_ for s in sentences):
            dropped["duplicate"] = dropped.get("duplicate", 0) + 1
        else:
            sentences.append(Sentence(text=text_, evidence=keys, section=item["section"], origin="llm"))
    return ParsedAnswer(confidence=confidence, sentences=sentences, stripped_codes=list(dict.fromkeys(stripped_codes)),
                        stripped_keys=list(dict.fromkeys(stripped_keys)), dropped=dropped,
                        truncated=truncated, sentences_raw=len(data["narrative"]), sentences_keys_valid=all_valid)


def combine_scores(criteria: dict[str, float], offered: list[str], confidence: dict[str, float]
                   ) -> tuple[dict[str, float], dict[str, str]]:
    """Final scores by the rule in the module docstring, and who decided each reported code."""
    final = dict(criteria)
    decided: dict[str, str] = {}
    for code in offered:
        s = criteria.get(code, 0.0)
        q = confidence.get(code)
        if q is None:                           # no opinion (a server that ignored "required")
            continue
        present = q >= LLM_ACCEPT
        if s >= FIRE_THRESHOLD:
            decided[code] = "criteria+llm"
            if not present:
                final[code] = round(max(0.0, s - LLM_ADJUSTMENT * (1.0 - q)), 6)
        elif present:
            final[code] = round(min(1.0, s + LLM_ADJUSTMENT * q), 6)
            decided[code] = "llm"
    return final, decided


def _names_unreported_code(text: str, reported: set[str]) -> bool:
    for code, row in scp_codes().items():
        if code in reported:
            continue
        if re.search(rf"(?<![\w/]){re.escape(code)}(?![\w/])", text):
            return True
        desc = row.get("description", "")
        if len(desc) > 3 and re.search(rf"\b{re.escape(desc)}\b", text, flags=re.I):
            return True
    return False


# --------------------------------------------------------------------------- entry point

def _prompt_budget(backend, llm: LlmSettings) -> int:
    n_ctx = backend.n_ctx or llm.n_ctx
    budget = llm.prompt_tokens or DEFAULT_PROMPT_TOKENS
    return max(256, min(budget, n_ctx - llm.max_tokens - 16))


def compose_diagnosis(measurements: Measurements, quality: Quality, candidates: Candidates, evidence: Evidence,
                      backend, settings: Settings, decisions: Decisions | None = None, logic=None) -> Diagnosis:
    """The diagnosis: criteria and decision layer only without a backend (or when the LLM call fails),
    otherwise the LLM chooses among the definite and borderline statements and writes the narrative."""
    decisions = decisions or default_decisions(measurements, candidates, logic)
    if backend is None:
        return criteria_only(measurements, candidates, evidence, decisions=decisions)
    info = LLMInfo(backend=backend.name, model=backend.model_id, model_sha256=backend.model_sha256)
    offered = offered_candidates(candidates, [*decisions.definite(), *decisions.borderline()])
    prompt = build_prompt(measurements, quality, offered, evidence, backend.count_tokens,
                          _prompt_budget(backend, settings.llm))
    info.dropped_passages = prompt.dropped_passages
    try:
        result = backend.complete_json(prompt.system, prompt.user, prompt.schema_,
                                       max_tokens=settings.llm.max_tokens, timeout_s=settings.llm.timeout_s)
    except LLMTimeoutError as e:
        return criteria_only(measurements, candidates, evidence, info.model_copy(update={"status": "timeout", "error": str(e)}),
                             decisions)
    except Exception as e:  # any backend failure degrades to criteria-only, never to no report
        return criteria_only(measurements, candidates, evidence,
                             info.model_copy(update={"status": "failed", "error": f"{type(e).__name__}: {e}"[:300]}),
                             decisions)
    info = info.model_copy(update={"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                                   "seconds": round(result.seconds, 3),
                                   "ttft_s": None if result.ttft_s is None else round(result.ttft_s, 3),
                                   "cached_prompt_tokens": result.cached_prompt_tokens,
                                   "decode_calls": result.decode_calls})
    try:
        answer = parse_answer(result.text, prompt)
    except InvalidAnswer as e:
        return criteria_only(measurements, candidates, evidence, info.model_copy(update={"status": "invalid", "error": str(e)}),
                             decisions)

    offered_codes = [c.code for c in offered]
    scores, decided = combine_scores(candidates.scores, offered_codes, answer.confidence)
    # The LLM chooses among the statements offered: it keeps or drops them within the bound of
    # combine_scores (a statement leaves when its score falls below 0.5), and it cannot add one.
    removed = {c for c in offered_codes if candidates.scores.get(c, 0.0) >= FIRE_THRESHOLD
               and scores.get(c, 0.0) < FIRE_THRESHOLD}
    stated_before = {*decisions.definite(), *decisions.borderline()}
    decisions = without(decisions, removed, logic)
    decided = {c: "criteria+llm" for c in offered_codes if c in answer.confidence}
    final, borderline, templates_all = _from_decisions(measurements, candidates, evidence, decisions, scores, decided)
    reported = {f.code for f in final} | {f.code for f in borderline}
    dropped = dict(answer.dropped)
    llm_sentences = []
    for s in answer.sentences:
        if _names_unreported_code(s.text, reported):
            dropped["names_unreported_code"] = dropped.get("names_unreported_code", 0) + 1
        else:
            llm_sentences.append(s)
    covered = {s.section for s in llm_sentences}
    templates = [s for s in templates_all if s.section not in covered]
    valid = evidence.keys() | set(measurements.flat())
    narrative = _ordered(_valid_only(templates + llm_sentences
                                     + [conclusion_sentence(final, candidates, measurements, borderline, decisions.category)],
                                     valid))
    narrative.append(Sentence(section="caution", text=CAUTION))
    fired = stated_before
    return Diagnosis(mode="llm", codes=final, borderline=borderline, category=decisions.category,
                     suppressed=decisions.suppressed, scores=scores, narrative=narrative,
                     added_by_llm=sorted(reported - fired - {"NORM"}), removed_by_llm=sorted(fired - reported),
                     stripped_keys=answer.stripped_keys, stripped_codes=answer.stripped_codes,
                     offered_codes=offered_codes, dropped_sentences=dropped,
                     llm=info.model_copy(update={"status": "ok", "truncated": answer.truncated,
                                                 "sentences_raw": answer.sentences_raw,
                                                 "sentences_keys_valid": answer.sentences_keys_valid}))
