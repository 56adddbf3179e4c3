"""Query understanding for `ragecg knowledge search`: what a clinician types, made searchable.

Measurements stated in free text ("PR 236 ms", "QTc of 520 ms", "S V1 + R V5 = 45 mm", "axis -50°",
"ST elevation 2 mm in V2-V4", "4,1 mV") become `Measurements` values (units converted: s -> ms,
mm -> mV at the standard gain of 10 mm/mV, µV -> mV); the knowledge base's own criteria
(`evaluate_criteria`, rule by rule, passed in by the pipeline) say which statements those values support; each
supported statement adds a query line (its description and the stated findings in words). Common
abbreviations (LBBB, AVB, LAHB...) and a few German terms are spelled out, and words the index does
not know are corrected to its closest vocabulary word (difflib). `KnowledgeIndex.search_lines`
fuses the lines' dense and lexical rankings and puts the best-supported statements' documents
first; `QueryUnderstanding.explain()` shows every step.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from collections.abc import Callable

from ragecg.values import (STANDARD_LEADS, Candidates, KnowledgeDoc, LeadMeasurements, Measurements, Passage,
                           describe_value, scp_codes)

from .query import finding_words

# The criteria stage's `evaluate_criteria(measurements, docs, sex=...)`, handed in by the caller
# (`pipeline.search_knowledge`): a stage does not import another stage.
Evaluate = Callable[..., Candidates]

MAX_STATEMENTS = 3            # supported statements (distinct documents) that get a query line each
MM_PER_MV = 10.0              # standard ECG gain: 10 mm = 1 mV (AHA 2007 recommendations, part I)
TYPO_CUTOFF = 0.84            # difflib similarity a word needs to be corrected to a vocabulary word
TYPO_MIN_LEN = 5              # shorter words are never "corrected" (abbreviations, lead names)

# Spelled-out forms added next to an abbreviation or German term (lower-case keys, whole words).
ABBREVIATIONS = {
    "lbbb": "left bundle branch block", "rbbb": "right bundle branch block",
    "ilbbb": "incomplete left bundle branch block", "irbbb": "incomplete right bundle branch block",
    "bbb": "bundle branch block", "lafb": "left anterior fascicular block", "lahb": "left anterior fascicular block",
    "lpfb": "left posterior fascicular block", "lphb": "left posterior fascicular block",
    "ivcd": "intraventricular conduction delay", "avb": "AV block", "chb": "complete heart block third degree AV block",
    "af": "atrial fibrillation", "afib": "atrial fibrillation", "a-fib": "atrial fibrillation",
    "vhf": "atrial fibrillation", "afl": "atrial flutter", "aflutter": "atrial flutter",
    "rvr": "rapid ventricular response", "svt": "supraventricular tachycardia",
    "psvt": "paroxysmal supraventricular tachycardia", "wpw": "Wolff-Parkinson-White pre-excitation",
    "lvh": "left ventricular hypertrophy", "rvh": "right ventricular hypertrophy",
    "lae": "left atrial enlargement", "rae": "right atrial enlargement",
    "lao": "left atrial overload", "rao": "right atrial overload",
    "pvc": "premature ventricular complex", "pvcs": "premature ventricular complexes",
    "ves": "ventricular extrasystole premature ventricular complex",
    "pac": "premature atrial complex", "pacs": "premature atrial complexes",
    "sves": "supraventricular extrasystole premature atrial complex",
    "mi": "myocardial infarction", "ami": "anterior myocardial infarction",
    "asmi": "anteroseptal myocardial infarction", "imi": "inferior myocardial infarction",
    "stemi": "ST elevation myocardial infarction", "nstemi": "non-ST elevation myocardial infarction",
    "ste": "ST elevation", "std": "ST depression", "twi": "T wave inversion",
    "lqts": "long QT syndrome", "sr": "sinus rhythm", "nsr": "normal sinus rhythm",
    "sb": "sinus bradycardia", "brady": "bradycardia", "tachy": "tachycardia", "tach": "tachycardia",
    "hr": "heart rate", "ekg": "ECG", "lad": "left axis deviation", "rad": "right axis deviation",
    "vat": "ventricular activation time R peak time",
    # German
    "schenkelblock": "bundle branch block", "linksschenkelblock": "left bundle branch block",
    "rechtsschenkelblock": "right bundle branch block", "vorhofflimmern": "atrial fibrillation",
    "vorhofflattern": "atrial flutter", "sinusrhythmus": "sinus rhythm",
    "sinusbradykardie": "sinus bradycardia", "sinustachykardie": "sinus tachycardia",
    "hebung": "elevation", "st-hebung": "ST elevation", "senkung": "depression", "st-senkung": "ST depression",
    "linksherzhypertrophie": "left ventricular hypertrophy", "rechtsherzhypertrophie": "right ventricular hypertrophy",
    "hinterwandinfarkt": "inferior myocardial infarction", "vorderwandinfarkt": "anterior myocardial infarction",
    "infarkt": "infarction", "normalbefund": "normal ECG", "extrasystolen": "premature complexes",
    "bigeminus": "bigeminy", "trigeminus": "trigeminy", "frequenz": "heart rate", "wellen": "waves",
    "negative": "inverted", "pq-zeit": "PR interval", "grades": "degree", "grad": "degree",
}

LEAD_GROUPS = {                # territories named in words -> leads (Goldberger 9th ed., ch. 9)
    "inferior": ("II", "III", "aVF"), "lateral": ("I", "aVL", "V5", "V6"), "high lateral": ("I", "aVL"),
    "anterior": ("V3", "V4"), "anteroseptal": ("V1", "V2", "V3", "V4"), "septal": ("V1", "V2"),
    "anterolateral": ("V3", "V4", "V5", "V6", "I", "aVL"), "precordial": ("V1", "V2", "V3", "V4", "V5", "V6"),
    "limb": ("I", "II", "III", "aVR", "aVL", "aVF"),
}
_LEAD = r"(?:aVR|aVL|aVF|AVR|AVL|AVF|avr|avl|avf|V[1-6]|v[1-6]|III|II|I)"
_LEAD_RE = re.compile(rf"(?<![A-Za-z0-9]){_LEAD}(?:\s*(?:-|–|—|to|bis)\s*{_LEAD})?(?![A-Za-z0-9'])")
_NUM = r"[-−–]?\s?\d+(?:[.,]\d+)?"
_UNIT = r"(?:ms|msec|sec|s|mv|mV|µv|µV|uv|uV|mm|bpm|/min|per\s+min(?:ute)?|°|deg(?:rees?)?|grad)"
_NUM_RE = re.compile(rf"(?<![\w.,:])(?P<num>{_NUM})(?![\d:])\s*(?P<unit>{_UNIT})?(?![A-Za-z])", re.IGNORECASE)
_RATIO_RE = re.compile(r"(?<![\d.])(\d)\s*:\s*1(?!\d)")


@dataclass
class ParsedValue:
    """One measurement found in the query: its evidence key(s), value in the key's unit, and the text."""
    measure: str                    # Measurements field (global or per-lead)
    value: float | bool
    text: str                       # the words it was read from
    leads: list[str] = field(default_factory=list)
    note: str = ""                  # how the unit or the leads were decided
    from_words: bool = False        # stated in words ("no P waves"), not as a number

    def evidence_keys(self) -> list[str]:
        return [f"{self.measure}[{ld}]" for ld in self.leads] if self.leads else [self.measure]


@dataclass
class SupportedStatement:
    code: str
    description: str
    doc_id: str                     # the document whose rule the stated values meet
    findings: list[str]             # the stated values that meet the statement's criteria, in words
    conditions_met: int
    conditions_total: int

    @property
    def share(self) -> float:
        return self.conditions_met / max(self.conditions_total, 1)


@dataclass
class QueryUnderstanding:
    query: str
    text: str                                   # the query with abbreviations spelled out, typos corrected
    values: list[ParsedValue] = field(default_factory=list)
    statements: list[SupportedStatement] = field(default_factory=list)
    expansions: dict[str, str] = field(default_factory=dict)     # abbreviation -> words added
    corrections: dict[str, str] = field(default_factory=dict)    # word -> vocabulary word

    @property
    def lines(self) -> list[str]:
        """The search lines: the (normalised) query, then one per document of the best supported
        statements (at most MAX_STATEMENTS documents): their descriptions and the findings in words."""
        by_doc: dict[str, list[SupportedStatement]] = {}
        for st in self.statements:
            if st.doc_id in by_doc or len(by_doc) < MAX_STATEMENTS:
                by_doc.setdefault(st.doc_id, []).append(st)
        out = [self.text]
        for sts in by_doc.values():
            findings = list(dict.fromkeys(f for st in sts for f in st.findings))
            out.append(f"{'; '.join(dict.fromkeys(st.description for st in sts))}: {', '.join(findings)}")
        return out

    @property
    def first_docs(self) -> list[str]:
        """Documents whose passages lead the results: those of the statements the stated values
        support best (largest share of their criteria stated and met; ties all kept)."""
        if not self.statements:
            return []
        top = self.statements[0].share
        return list(dict.fromkeys(s.doc_id for s in self.statements if s.share == top))[:MAX_STATEMENTS]

    def to_dict(self) -> dict:
        return {"query": self.query, "text": self.text,
                "values": [{"keys": v.evidence_keys(), "value": v.value, "from": v.text, **({"note": v.note} if v.note else {})}
                           for v in self.values],
                "statements": [{"code": s.code, "description": s.description, "document": s.doc_id,
                                "findings": s.findings, "conditions_met": s.conditions_met,
                                "conditions": s.conditions_total} for s in self.statements],
                "expansions": self.expansions, "corrections": self.corrections, "search_lines": self.lines,
                "documents_first": self.first_docs}

    def explain(self) -> str:
        out = [f"query: {self.query}"]
        for a, b in self.corrections.items():
            out.append(f"  typo: {a} -> {b}")
        for a, b in self.expansions.items():
            out.append(f"  abbreviation: {a} -> {b}")
        for v in self.values:
            val = describe_value(v.evidence_keys()[0].split("[")[0], v.value)
            where = f" in {', '.join(v.leads)}" if v.leads else ""
            out.append(f"  value: {val}{where}   <- \"{v.text}\"" + (f" ({v.note})" if v.note else ""))
        for s in self.statements:
            out.append(f"  supports {s.code} ({s.description}; {s.conditions_met}/{s.conditions_total} criteria "
                       f"stated and met; {s.doc_id}): {', '.join(s.findings)}")
        if not self.values:
            out.append("  no measurement recognised")
        out.append("search lines:")
        out += [f"  {ln}" for ln in self.lines]
        if self.first_docs:
            out.append(f"documents first: {', '.join(self.first_docs)}")
        return "\n".join(out)


# ------------------------------------------------------------------ numbers, units, leads
def _number(s: str) -> float:
    s = s.replace("−", "-").replace("–", "-").replace(" ", "").replace(",", ".")
    return float(s)


def _leads_in(text: str) -> list[str]:
    canon = {ld.lower(): ld for ld in STANDARD_LEADS}
    out: list[str] = []
    for m in _LEAD_RE.finditer(text):
        parts = re.split(r"\s*(?:-|–|—|to|bis)\s*", m.group(0))
        a = canon.get(parts[0].lower())
        b = canon.get(parts[-1].lower()) if len(parts) > 1 else a
        if a is None or b is None:
            continue
        i, j = STANDARD_LEADS.index(a), STANDARD_LEADS.index(b)
        out += list(STANDARD_LEADS[min(i, j):max(i, j) + 1]) if len(parts) > 1 else [a]
    low = text.lower()
    for name in sorted(LEAD_GROUPS, key=len, reverse=True):
        if re.search(rf"\b{name}\b", low) and not out:
            out += LEAD_GROUPS[name]
    return list(dict.fromkeys(out))


def _ms(v: float, unit: str) -> tuple[float, str]:
    if unit in ("s", "sec") or (not unit and v < 3):
        return v * 1000.0, "seconds -> ms"
    return v, ""


def _mv(v: float, unit: str) -> tuple[float, str]:
    if unit == "mm" or (not unit and abs(v) >= 6):
        return v / MM_PER_MV, "mm -> mV at 10 mm/mV" if unit == "mm" else "no unit: read as mm (10 mm/mV)"
    if unit in ("µv", "uv"):
        return v / 1000.0, "µV -> mV"
    return v, ""


# Quantities: (pattern before the number, measure, kind). The nearest preceding pattern in the
# clause decides; kinds: ms (durations), mv (amplitudes), bpm, deg.
_QUANTITIES: list[tuple[str, str, str]] = [
    ((r"sokolow(?:[- ]lyon)?(?:\s*(?:index|voltage|criteri\w*))?|s\s*(?:in\s*)?v1\s*(?:\+|plus|and)\s*r\s*(?:in\s*)?v[56]"
      r"|sum of s in v1 and r in v[56]|r\s*(?:in\s*)?v[56]\s*(?:\+|plus|and)\s*s\s*(?:in\s*)?v1"), "sokolow_lyon_mv", "mv"),
    (r"cornell(?:\s*(?:index|voltage|criteri\w*))?|r\s*(?:in\s*)?avl\s*(?:\+|plus|and)\s*s\s*(?:in\s*)?v3", "cornell_voltage_mv", "mv"),
    (r"qtc\s*b|qtc\s*\(?bazett\)?", "qtc_bazett_ms", "ms"),
    (r"qtc\s*f|qtc\s*\(?fridericia\)?", "qtc_fridericia_ms", "ms"),
    (r"qtc|corrected qt", "qtc", "ms"),
    (r"qt(?:[- ]?(?:interval|zeit|time))?", "qt_interval_ms", "ms"),
    (r"p\s*r(?:[- ]?(?:interval|zeit|time))?|pq(?:[- ]?(?:interval|zeit|time|dauer))?", "pr_interval_ms", "ms"),
    (r"qrs(?:[- ]?(?:duration|width|dauer|breite|complex))?|qrs\s+of", "qrs_duration_ms", "ms"),
    (r"(?:qrs\s*|electrical\s*|frontal\s*)?axis|achse|lagetyp", "qrs_axis_deg", "deg"),
    (r"p[- ]?axis", "p_axis_deg", "deg"), (r"t[- ]?axis", "t_axis_deg", "deg"),
    (r"atrial (?:rate|frequency)|flutter (?:rate|waves?)|vorhoffrequenz", "atrial_dominant_rate_bpm", "bpm"),
    ((r"heart rate|herzfrequenz|frequenz|hr|ventricular rate|ventricular response|rate|puls|pulse|escape rate"
      r"|sinus rate|rhythm|brady\w*|tach\w*|sinus"), "heart_rate_bpm", "bpm"),
    (r"r[- ]?peak time|vat|ventricular activation time|intrinsicoid deflection", "r_peak_time_ms", "ms"),
    (r"(?:largest |max\w* )?limb[- ]lead(?:s)?(?: qrs)?|qrs (?:amplitude|voltage) in (?:the )?limb leads",
     "limb_lead_qrs_max_mv", "mv"),
    (r"st[- ]?(?:segment[- ])?(?:elevation|hebung|elevated)|ste", "st_elevation", "mv"),
    (r"st[- ]?(?:segment[- ])?(?:depression|senkung|depressed)|std", "st_depression", "mv"),
    (r"st(?:[- ]segment)?(?: level| deviation)?", "st_level", "mv"),
    (r"t[- ]?(?:wave)?s?\s*(?:inversion|inverted|negative|negativ)|(?:inverted|negative|negativ)\s+t(?:[- ]?waves?)?",
     "t_inversion", "mv"),
    (r"t[- ]?(?:wave)?s?(?: amplitude)?", "t_amplitude_mv", "mv"),
    (r"p[- ]?(?:wave)?s?\s*(?:duration|width|dauer|breite)", "p_duration_ms", "ms"),
    (r"p[- ]?(?:wave)?s?(?: amplitude)?|p pulmonale|p mitrale", "p_wave", "any"),
    (r"q[- ]?(?:wave)?s?", "q_wave", "any"),
    (r"r[- ]?(?:wave)?s?(?: amplitude)?", "r_amplitude_mv", "mv"),
    (r"s[- ]?(?:wave)?s?(?: amplitude)?", "s_amplitude_mv", "mv"),
]
_QUANTITY_RES = [(re.compile(rf"(?<![a-z0-9'])(?:{p})(?![a-z0-9'])"), m, k) for p, m, k in _QUANTITIES]
_PER_LEAD = {"st_elevation", "st_depression", "st_level", "t_inversion", "t_amplitude_mv", "q_wave",
             "r_amplitude_mv", "s_amplitude_mv", "r_peak_time_ms", "p_wave"}
_GAP = 40                     # most characters between a quantity's words and its number


def _quantity_before(clause_low: str, start: int) -> tuple[str, str, int] | None:
    """The quantity whose words end nearest before `start` (within _GAP characters)."""
    best = None
    window_start = max(0, start - _GAP)
    for rx, measure, kind in _QUANTITY_RES:
        for m in rx.finditer(clause_low, window_start, start):
            if m.end() <= start and (best is None or m.end() > best[2] or
                                     (m.end() == best[2] and m.start() < best[3])):
                best = (measure, kind, m.end(), m.start())
    return None if best is None else best[:3]


def _clauses(text: str) -> list[str]:
    """Split on ; and newlines and on commas that do not join leads or decimal digits."""
    parts = re.split(rf"[;\n]|(?:(?<!\d),|,(?!\d))(?!\s*{_LEAD}(?![A-Za-z0-9']))", text)
    return [p.strip() for p in parts if p and p.strip()]


def parse_measurements(query: str) -> list[ParsedValue]:
    """Measurements stated in `query`, in the units of their Measurements keys."""
    out: list[ParsedValue] = []
    query_leads = _leads_in(query)
    for clause in _clauses(query):
        low = clause.lower()
        leads = _leads_in(clause) or query_leads
        for m in _NUM_RE.finditer(clause):
            raw, unit = m.group("num"), (m.group("unit") or "").lower().replace(" ", "")
            # a lead name's digit ("V1") or a ratio are not values
            if re.search(r"[vV]$", clause[:m.start()]) or _RATIO_RE.match(clause, m.start()):
                continue
            try:
                v = _number(raw)
            except ValueError:
                continue
            q = _quantity_before(low, m.start())
            unit = {"msec": "ms", "per min": "/min", "perminute": "/min", "permin": "/min", "degrees": "deg",
                    "degree": "deg", "°": "deg", "grad": "deg"}.get(unit, unit)
            if q is None:
                if unit in ("bpm", "/min"):
                    q = ("heart_rate_bpm", "bpm", 0)
                elif unit == "deg":
                    q = ("qrs_axis_deg", "deg", 0)
                else:
                    continue
            measure, kind, _ = q
            if kind == "bpm" and unit and unit not in ("bpm", "/min"):
                continue
            text = clause[max(0, m.start() - _GAP):m.end()].strip()
            pv = _interpret(measure, kind, v, unit, leads, text, low)
            if pv is not None:
                out += pv
    return _dedupe(out + _qualitative(query))


def _interpret(measure: str, kind: str, v: float, unit: str, leads: list[str], text: str,
               low: str) -> list[ParsedValue] | None:
    note = ""
    if measure == "p_wave":
        if unit in ("ms", "s", "sec") or (not unit and v >= 60):
            measure, kind = "p_duration_ms", "ms"
        else:
            measure, kind = "p_amplitude_mv", "mv"
    if measure == "q_wave":
        if unit in ("ms", "s", "sec") or (not unit and 0 < v < 1 and "mv" not in low):
            measure, kind = "q_duration_ms", "ms"
        else:
            measure, kind, v = "q_amplitude_mv", "mv", -abs(v)
    if kind == "ms":
        if unit and unit not in ("ms", "s", "sec"):
            return None
        v, note = _ms(v, unit)
    elif kind == "mv":
        if unit and unit not in ("mv", "mm", "µv", "uv"):
            return None
        v, note = _mv(v, unit)
    elif kind == "deg" and unit and unit != "deg":
        return None
    if measure in ("st_elevation", "st_depression", "st_level"):
        sign = -1.0 if measure == "st_depression" or (measure == "st_level" and v < 0) else 1.0
        v = sign * abs(v)
        measures = ["st_j_mv", "st_j60_mv", "st_j80_mv"]
    elif measure == "t_inversion":
        v, measures = -abs(v), ["t_amplitude_mv"]
    elif measure == "s_amplitude_mv":
        v, measures = -abs(v), [measure]
    elif measure == "qtc":
        measures = ["qtc_bazett_ms", "qtc_fridericia_ms", "qtc_framingham_ms", "qtc_hodges_ms"]
        note = (note + "; " if note else "") + "QTc formula not stated: every formula"
    else:
        measures = [measure]
    per_lead = measure in _PER_LEAD or measures[0] in LeadMeasurements.model_fields and measure != "p_duration_ms"
    use_leads: list[str] = []
    if per_lead and measures[0] in LeadMeasurements.model_fields:
        use_leads = leads or list(STANDARD_LEADS)
        if not leads:
            note = (note + "; " if note else "") + "no lead named: every lead"
    elif measures[0] not in Measurements.model_fields:
        return None
    return [ParsedValue(ms_, round(v, 4), text, list(use_leads), note) for ms_ in measures]


_QUALITATIVE = [     # words that state a boolean or ratio measurement outright
    (r"\bno (?:visible |discernible )?p[- ]?waves?\b|\bp[- ]?waves? (?:absent|not seen)\b|\bwithout p[- ]?waves?\b",
     "p_present", False),
    ((r"\bp (?:wave )?(?:before|precedes|preceding) (?:each|every) qrs\b|\beach p followed by (?:a )?qrs\b"
      r"|\bupright p\b|\bsinus\b|\bsinusrhythmus\b|\bp[- ]?waves? present\b|\b1:1 (?:av )?conduction\b"), "p_present", True),
    ((r"\beach p followed by (?:a )?qrs\b|\bp (?:wave )?(?:before|precedes|preceding) (?:each|every) qrs\b"
      r"|\b1:1 (?:av )?conduction\b"), "p_waves_per_qrs", 1.0),
]


def _qualitative(query: str) -> list[ParsedValue]:
    low = query.lower()
    out = []
    taken: set[str] = set()
    for pattern, measure, value in _QUALITATIVE:
        m = re.search(pattern, low)
        if m and measure not in taken:
            taken.add(measure)
            out.append(ParsedValue(measure, value, query[m.start():m.end()], from_words=True))
    for m in _RATIO_RE.finditer(query):      # "2:1 block" -> 2 P waves per QRS
        if int(m.group(1)) >= 2 and "p_waves_per_qrs" not in taken:
            taken.add("p_waves_per_qrs")
            out.append(ParsedValue("p_waves_per_qrs", float(m.group(1)), m.group(0), note="N:1 conduction"))
    return out


def _dedupe(values: list[ParsedValue]) -> list[ParsedValue]:
    seen: set[tuple] = set()
    out = []
    for v in values:
        key = (v.measure, tuple(v.leads))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def measurements_from(values: list[ParsedValue]) -> Measurements:
    """A `Measurements` holding only the stated values (everything else unmeasured)."""
    glob: dict = {}
    leads: dict[str, dict] = {}
    for v in values:
        if v.leads:
            for ld in v.leads:
                leads.setdefault(ld, {})[v.measure] = v.value
        else:
            glob[v.measure] = v.value
    if glob.get("heart_rate_bpm"):
        glob.setdefault("rr_mean_ms", 60000.0 / float(glob["heart_rate_bpm"]))
    for k, val in list(glob.items()):
        f = Measurements.model_fields[k]
        if f.annotation in (int, int | None):
            glob[k] = round(float(val))
    return Measurements(sampling_rate_hz=0, duration_s=0, **glob,
                        leads={ld: LeadMeasurements(**vals) for ld, vals in leads.items()})


# ------------------------------------------------------------------ statements the values support
def supported_statements(values: list[ParsedValue], docs: list[KnowledgeDoc], evaluate: Evaluate,
                         sex: str | None = None) -> list[SupportedStatement]:
    """Statements whose criteria the stated values meet, rule by rule through `evaluate_criteria`.
    A rule supports its code when every one of its conditions on a stated value is met, one of
    them is a number (not only "P waves present"), they are at least a third of its conditions (conditions on values not stated are left open), and, for a
    statement that is neither a rhythm nor NORM, one of those values is outside the normal ECG's
    criteria ("QRS 90 ms" meets the "QRS < 120 ms" of many rules but supports none of them).
    Best first: share of the rule's conditions stated and met, then their number; one entry per
    (statement, document)."""
    if not values:
        return []
    m = measurements_from(values)
    stated = {v.measure for v in values}
    numeric = {v.measure for v in values if not v.from_words}
    table = scp_codes()
    normal = _normal_verdicts(m, docs, evaluate, sex)
    found: dict[tuple[str, str], SupportedStatement] = {}
    for doc in docs:
        for rule in doc.criteria:
            if not any(c.measure in stated for c in rule.conditions):
                continue
            cand = next((c for c in evaluate(m, [_one_rule(doc, rule)], sex=sex).candidates
                         if c.code == rule.code), None)
            if cand is None:
                continue
            known = [r for r in cand.conditions if r.value is not None]
            if not all(r.met for r in known) or len(known) * 3 < len(cand.conditions) \
                    or not any(r.measure in numeric for r in known):    # words alone ("sinus") support nothing
                continue
            row = table.get(rule.code, {})
            exempt = rule.code == "NORM" or "rhythm" in (row.get("kinds") or [])
            if not exempt and all(normal.get(r.measure, False) for r in known):
                continue
            findings = list(dict.fromkeys(f for r in known if (f := finding_words(r))))
            st = SupportedStatement(rule.code, row.get("description", rule.code), doc.id, findings,
                                    len(known), len(cand.conditions))
            prev = found.get((rule.code, doc.id))
            if prev is None or (st.share, st.conditions_met) > (prev.share, prev.conditions_met):
                found[(rule.code, doc.id)] = st
    return sorted(found.values(), key=lambda s: (-s.share, -s.conditions_met, s.code, s.doc_id))


_ONE_RULE: dict[int, tuple] = {}


def _one_rule(doc: KnowledgeDoc, rule) -> KnowledgeDoc:
    """`doc` with only `rule` (so that `evaluate_criteria` scores that rule alone), made once."""
    hit = _ONE_RULE.get(id(rule))
    if hit is None or hit[0] is not rule or hit[1] is not doc:
        hit = (rule, doc, doc.model_copy(update={"criteria": [rule]}))
        _ONE_RULE[id(rule)] = hit
    return hit[2]


def _normal_verdicts(m: Measurements, docs: list[KnowledgeDoc], evaluate: Evaluate,
                     sex: str | None) -> dict[str, bool]:
    """measure -> True when every stated value of it meets the normal ECG's (NORM) criteria on it;
    measures NORM has no criterion on are absent (a stated value of them counts as a finding)."""
    out: dict[str, bool] = {}
    for doc in docs:
        for rule in doc.criteria:
            if rule.code != "NORM":
                continue
            cand = next((c for c in evaluate(m, [_one_rule(doc, rule)], sex=sex).candidates
                         if c.code == "NORM"), None)
            for r in cand.conditions if cand else []:
                if r.value is not None:
                    out[r.measure] = out.get(r.measure, True) and r.met
    return out


# ------------------------------------------------------------------ words
_WORD_RE = re.compile(r"[A-Za-zÄÖÜäöüß][A-Za-zÄÖÜäöüß'-]*")


@lru_cache(maxsize=8)
def _by_initial(vocabulary: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in sorted(vocabulary):
        out.setdefault(w[:1], []).append(w)
    return out


def _candidates(vocabulary, word: str) -> list[str]:
    """Vocabulary words a typo of `word` may stand for: same first letter, length within 2 (a
    similarity of TYPO_CUTOFF cannot be reached across a larger difference for these lengths)."""
    return [w for w in _by_initial(frozenset(vocabulary)).get(word[:1], []) if abs(len(w) - len(word)) <= 2]


def normalise_words(query: str, vocabulary: set[str] | frozenset[str] = frozenset()) -> tuple[str, dict, dict]:
    """(text, expansions, corrections): abbreviations and German terms followed by their words in
    parentheses; words unknown to `vocabulary` (lower-case) replaced by their closest known word."""
    expansions: dict[str, str] = {}
    corrections: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        word = m.group(0)
        low = word.lower().strip("-'")
        if low in ABBREVIATIONS:
            expansions[word] = ABBREVIATIONS[low]
            return f"{word} ({ABBREVIATIONS[low]})"
        if vocabulary and len(low) >= TYPO_MIN_LEN and low not in vocabulary and not any(c.isdigit() for c in low):
            close = difflib.get_close_matches(low, _candidates(vocabulary, low), n=1, cutoff=TYPO_CUTOFF)
            if close:
                corrections[word] = close[0]
                return close[0]
        return word

    text = _WORD_RE.sub(repl, query)
    return text, expansions, corrections


def understand_query(query: str, docs: list[KnowledgeDoc], evaluate: Evaluate,
                     vocabulary: set[str] | frozenset[str] = frozenset(), sex: str | None = None) -> QueryUnderstanding:
    """Parse, evaluate (with the criteria stage's `evaluate`) and expand one free-text query."""
    text, expansions, corrections = normalise_words(query, vocabulary)
    values = parse_measurements(query)
    return QueryUnderstanding(query=query, text=text, values=values,
                              statements=supported_statements(values, docs, evaluate, sex=sex),
                              expansions=expansions, corrections=corrections)


def search_understood(index, understood: QueryUnderstanding, k: int, mode: str | None = None) -> list[Passage]:
    """The passages for an understood query: its lines fused (`KnowledgeIndex.search_lines`), the
    best-supported statements' documents first."""
    lines = understood.lines
    return index.search_lines(lines[0], lines[1:], k, mode=mode, first_docs=understood.first_docs)
