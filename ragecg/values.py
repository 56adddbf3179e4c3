"""The values that pass between the stages, and the vocabulary they share, each defined once.

Numpy and pydantic only: importing a type never imports an algorithm (no SciPy). Stages read these
values and return these values; see docs/architecture.md.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

# ------------------------------------------------------------------ leads
STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")
LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")
PRECORDIAL_LEADS = ("V1", "V2", "V3", "V4", "V5", "V6")
# a lead whose peak-to-peak stays below 0.05 mV is flat (AHA 2009 Part I low-voltage definition: a normal
# QRS is >= 0.5 mV in limb leads); the quality gate and the measurement use the same rule
FLAT_P2P_MV = 0.05


@dataclass
class Ecg:
    """An ECG in mV, 12 columns in STANDARD_LEADS order. A lead the file does not hold is NaN and listed in
    `missing_leads` (any subset of the 12 leads, at least one, is read: Holter, limb-lead, single-lead)."""

    signals_mv: np.ndarray            # samples x 12, float32
    sampling_rate_hz: float
    source_path: str
    source_format: str
    missing_leads: list[str] = field(default_factory=list)
    derived_leads: list[str] = field(default_factory=list)
    sex: str | None = None            # "M" / "F" when the file says; patient data: never logged
    age_years: float | None = None
    header_comments: list[str] = field(default_factory=list, repr=False)  # never logged
    device_statements: list[str] = field(default_factory=list, repr=False)
    device_measurements: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return self.signals_mv.shape[0] / self.sampling_rate_hz

    @property
    def n_samples(self) -> int:
        return int(self.signals_mv.shape[0])

    def lead(self, name: str) -> np.ndarray:
        return self.signals_mv[:, STANDARD_LEADS.index(name)]

    def __repr__(self) -> str:  # no signal values, no patient data
        return (f"Ecg(source={Path(self.source_path).name!r}, format={self.source_format}, "
                f"fs={self.sampling_rate_hz} Hz, duration={self.duration_s:.1f} s)")


# ------------------------------------------------------------------ measurements
class LeadMeasurements(BaseModel):
    """Per-lead amplitudes (mV) and durations (ms), measured on the lead's median beat."""

    p_amplitude_mv: float | None = None
    p_duration_ms: float | None = None       # this lead's own P onset to P end (lead II: AHA 2009 Part V's lead)
    p_terminal_negative_mv: float | None = None   # depth of the P wave's terminal negative phase (<= 0), 0 when none
    p_terminal_negative_ms: float | None = None   # its duration, 0 when none
    p_terminal_force_mv_ms: float | None = None   # depth x duration of that phase (V1: P terminal force, Morris 1964)
    q_amplitude_mv: float | None = None      # negative deflection before R (<= 0), 0 when no Q
    q_duration_ms: float | None = None
    r_amplitude_mv: float | None = None      # >= 0
    r_duration_ms: float | None = None       # duration of the (first) R wave, 0 when no R
    r_prime_amplitude_mv: float | None = None
    s_amplitude_mv: float | None = None      # <= 0 (signed, as measured)
    s_prime_amplitude_mv: float | None = None
    t_amplitude_mv: float | None = None      # signed, largest deflection of T
    st_j_mv: float | None = None
    st_j60_mv: float | None = None
    st_j80_mv: float | None = None
    r_peak_time_ms: float | None = None      # QRS onset to R peak (ventricular activation time)
    qrs_net_mv: float | None = None          # R + S (signed), for axis
    qrs_notch_count: int | None = None       # local maxima of the QRS beyond the first (R', notches)


GLOBAL_KEYS = (
    "heart_rate_bpm", "rr_mean_ms", "rr_sd_ms", "rr_cv", "rr_min_ms", "rr_max_ms", "beat_count",
    "premature_beat_count", "pvc_count", "pac_count", "bigeminy_cycles", "trigeminy_cycles", "nn_range_ms",
    "rr_irregularity", "nn_rmssd_ratio", "p_wave_beat_fraction",
    "atrial_dominant_rate_bpm", "atrial_organization", "atrial_ventricular_rate_ratio", "pause_count",
    "p_waves_per_qrs", "p_present",
    "p_duration_ms", "pr_interval_ms", "qrs_duration_ms", "qt_interval_ms",
    "qtc_bazett_ms", "qtc_fridericia_ms", "qtc_framingham_ms", "qtc_hodges_ms",
    "p_axis_deg", "qrs_axis_deg", "t_axis_deg", "sokolow_lyon_mv", "cornell_voltage_mv",
    "limb_lead_qrs_max_mv", "precordial_qrs_max_mv",
)
LEAD_KEYS = tuple(LeadMeasurements.model_fields)


class Measurements(BaseModel):
    """Global values (units in the names), per-lead values, and why a value is missing.

    Keys used by criteria and evidence: a global name (``qrs_duration_ms``) or ``name[LEAD]``
    (``st_j60_mv[V2]``).
    """

    sampling_rate_hz: float
    duration_s: float
    heart_rate_bpm: float | None = None
    rr_mean_ms: float | None = None
    rr_sd_ms: float | None = None
    rr_cv: float | None = None               # SD/mean of RR intervals (irregularity)
    rr_min_ms: float | None = None
    rr_max_ms: float | None = None
    beat_count: int | None = None
    premature_beat_count: int | None = None  # beats >= 20 % early (ragecg.signal.rhythm)
    pvc_count: int | None = None             # premature beats with a wide QRS unlike the dominant one
    pac_count: int | None = None             # other premature beats (supraventricular: atrial or junctional)
    bigeminy_cycles: int | None = None       # longest run of normal-premature pairs
    trigeminy_cycles: int | None = None      # longest run of normal-normal-premature triplets
    nn_range_ms: float | None = None         # longest minus shortest NN (normal-to-normal) interval
    rr_irregularity: float | None = None     # pooled within-class (NN/coupling/pause) RR SD / mean RR (rhythm.py)
    nn_rmssd_ratio: float | None = None      # RMSSD of consecutive NN intervals / mean NN (Dash et al. 2009)
    p_wave_beat_fraction: float | None = None  # share of beats with the repeating P wave before them (rhythm.py)
    atrial_dominant_rate_bpm: float | None = None  # dominant frequency x 60 of the QRST-cancelled signal
    atrial_organization: float | None = None  # share of that signal's 3-12 Hz power at the peak (+ harmonic)
    atrial_ventricular_rate_ratio: float | None = None  # atrial_dominant_rate_bpm / heart_rate_bpm (conduction ratio)
    pause_count: int | None = None           # RR > 2.0 s
    p_waves_per_qrs: float | None = None
    p_present: bool | None = None
    p_duration_ms: float | None = None
    pr_interval_ms: float | None = None
    qrs_duration_ms: float | None = None
    qt_interval_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    qtc_framingham_ms: float | None = None
    qtc_hodges_ms: float | None = None
    p_axis_deg: float | None = None
    qrs_axis_deg: float | None = None
    t_axis_deg: float | None = None
    sokolow_lyon_mv: float | None = None     # S(V1) + max(R(V5), R(V6))
    cornell_voltage_mv: float | None = None  # R(aVL) + |S(V3)|
    limb_lead_qrs_max_mv: float | None = None     # largest peak-to-peak QRS in limb leads (low voltage)
    precordial_qrs_max_mv: float | None = None
    leads: dict[str, LeadMeasurements] = Field(default_factory=dict)
    not_measurable: dict[str, str] = Field(default_factory=dict)   # key -> reason
    methods: dict[str, str] = Field(default_factory=dict)          # key -> lead/method it came from
    confidence: dict[str, float] = Field(default_factory=dict)     # key -> [0, 1]
    # key (as in flat()) -> beat-to-beat spread in the key's own unit: robust SD (1.4826 x MAD) of the
    # value measured on each dominant beat separately (ragecg.signal.beats.beat_timings); absent when < 3 beats
    uncertainty: dict[str, float] = Field(default_factory=dict)
    # key -> why its value is uncertain (spread above the IEC 60601-2-25 SD tolerance, too few beats);
    # a key not listed here is a value measured on enough beats with a spread within the tolerance
    uncertain: dict[str, str] = Field(default_factory=dict)

    def get(self, key: str) -> float | bool | None:
        """Value by evidence key: ``qrs_duration_ms`` or ``st_j60_mv[V2]``."""
        if key.endswith("]") and "[" in key:
            name, lead = key[:-1].split("[", 1)
            lm = self.leads.get(lead)
            return None if lm is None else getattr(lm, name, None)
        return getattr(self, key, None)

    def flat(self) -> dict[str, float | bool | int]:
        """Every measured (non-None) value by evidence key."""
        out: dict[str, float | bool | int] = {}
        for k in GLOBAL_KEYS:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        for lead in STANDARD_LEADS:
            lm = self.leads.get(lead)
            if lm is None:
                continue
            for k in LEAD_KEYS:
                v = getattr(lm, k)
                if v is not None:
                    out[f"{k}[{lead}]"] = v
        return out


def is_measurement_key(key: str) -> bool:
    name = key.split("[", 1)[0]
    return name in GLOBAL_KEYS or name in LEAD_KEYS


# ------------------------------------------------------------------ measurement words and units
MEASURE_WORDS = {
    "heart_rate_bpm": "heart rate", "rr_mean_ms": "mean RR interval", "rr_sd_ms": "RR interval SD",
    "rr_cv": "RR interval variability (coefficient of variation)", "rr_min_ms": "shortest RR interval",
    "rr_max_ms": "longest RR interval", "beat_count": "beat count", "premature_beat_count": "premature beats",
    "pvc_count": "premature ventricular complexes", "pac_count": "premature atrial (supraventricular) complexes",
    "bigeminy_cycles": "bigeminal cycles (normal beat, premature beat)",
    "trigeminy_cycles": "trigeminal cycles (two normal beats, premature beat)",
    "nn_range_ms": "range of normal-to-normal (sinus) intervals",
    "rr_irregularity": "RR irregularity with premature beats and their pauses set apart",
    "nn_rmssd_ratio": "normalised RMSSD of normal-to-normal intervals",
    "p_wave_beat_fraction": "share of beats preceded by the repeating P wave",
    "atrial_dominant_rate_bpm": "dominant atrial activity rate (flutter-wave frequency)",
    "atrial_organization": "organisation of atrial activity (share of power at its dominant frequency)",
    "atrial_ventricular_rate_ratio": "atrial to ventricular rate ratio (atrioventricular conduction ratio)",
    "qrs_notch_count": "QRS notches (fragmented QRS)",
    "pause_count": "pauses", "p_waves_per_qrs": "P waves per QRS complex", "p_present": "P waves",
    "p_duration_ms": "P wave duration", "pr_interval_ms": "PR interval", "qrs_duration_ms": "QRS duration",
    "qt_interval_ms": "QT interval", "qtc_bazett_ms": "QTc (Bazett)", "qtc_fridericia_ms": "QTc (Fridericia)",
    "qtc_framingham_ms": "QTc (Framingham)", "qtc_hodges_ms": "QTc (Hodges)", "p_axis_deg": "P axis",
    "qrs_axis_deg": "QRS axis", "t_axis_deg": "T axis", "sokolow_lyon_mv": "Sokolow-Lyon voltage",
    "cornell_voltage_mv": "Cornell voltage", "limb_lead_qrs_max_mv": "largest limb-lead QRS amplitude",
    "precordial_qrs_max_mv": "largest precordial QRS amplitude",
    "p_amplitude_mv": "P wave amplitude", "p_terminal_negative_mv": "depth of the terminal negative P phase",
    "p_terminal_negative_ms": "duration of the terminal negative P phase",
    "p_terminal_force_mv_ms": "P terminal force (depth x duration of the terminal negative P phase)",
    "q_amplitude_mv": "Q wave amplitude", "q_duration_ms": "Q wave duration",
    "r_amplitude_mv": "R wave amplitude", "r_prime_amplitude_mv": "R' (secondary R wave) amplitude",
    "s_amplitude_mv": "S wave amplitude", "s_prime_amplitude_mv": "S' amplitude",
    "t_amplitude_mv": "T wave amplitude", "st_j_mv": "ST level at the J point", "st_j60_mv": "ST level at J+60 ms",
    "st_j80_mv": "ST level at J+80 ms", "r_peak_time_ms": "R peak time", "qrs_net_mv": "net QRS amplitude",
}
UNITS = {"_ms": "ms", "_mv": "mV", "_bpm": "bpm", "_deg": "degrees"}         # in words (queries, documents)
UNIT_SYMBOLS = {"_ms": "ms", "_mv": "mV", "_bpm": "bpm", "_deg": "deg"}       # after a value (prompt, narrative)


def split_key(key: str) -> tuple[str, str | None]:
    if key.endswith("]") and "[" in key:
        name, lead = key[:-1].split("[", 1)
        return name, lead
    return key, None


def unit_of(key: str) -> str:
    """The unit symbol of a measurement key (``st_j60_mv[V2]`` -> ``mV``; ratios and counts: "")."""
    base = key.split("[", 1)[0]
    for suffix, unit in UNIT_SYMBOLS.items():
        if base.endswith(suffix):
            return unit
    return ""


def describe_measure(key: str) -> str:
    """Words for a measurement key: ``st_j60_mv[V2]`` -> ``ST level at J+60 ms in V2``."""
    name, lead = split_key(key)
    words = MEASURE_WORDS.get(name)
    if words is None:
        base = name
        for suffix in UNITS:
            base = base.removesuffix(suffix)
        words = base.replace("_", " ")
    return f"{words} in {lead}" if lead else words


def describe_value(key: str, value: float | int | bool) -> str:
    """A measurement in words with its value and unit: ``QRS duration 148 ms``."""
    name, _ = split_key(key)
    if isinstance(value, bool):
        return f"{describe_measure(key)} {'present' if value else 'absent'}"
    unit = next((u for s, u in UNITS.items() if name.endswith(s)), "")
    text = f"{value:.2f}" if unit == "mV" else (f"{value:.0f}" if unit else f"{value:.2g}")
    return f"{describe_measure(key)} {text} {unit}".rstrip()


# ------------------------------------------------------------------ signal quality
LeadState = Literal["good", "noisy", "too_noisy", "flat", "saturated", "missing"]


class LeadQuality(BaseModel):
    state: LeadState
    reason: str | None = None
    noise_ratio: float | None = None
    hf_noise_uv: float | None = None       # robust SD above 40 Hz (None when fs <= 90 Hz)
    mains_hz: float | None = None          # a 50/60 Hz line (< Nyquist) holds most of the power above 40 Hz
    beat_agreement: float | None = None    # bSQI of this lead's own beats with the multi-lead beats


class PacingFinding(BaseModel):
    """Pacemaker stimuli found on the raw signal (ragecg.signal.pacing)."""

    kind: Literal["none", "ventricular", "atrial", "dual", "not_excluded"]
    spike_count: int = 0
    paced_beats: int = 0
    beats: int = 0
    spike_samples: list[int] = Field(default_factory=list)       # sample indices at the record's rate
    paced_beat_samples: list[int] = Field(default_factory=list)
    note: str | None = None


# The note that marks values read from disputed beats (`Measurements.uncertain`, `Measurements.methods`;
# ragecg.signal.checks.with_beat_flags), so that later stages can say the rhythm was not read.
BEATS_DISPUTED = "beats disputed"


class Quality(BaseModel):
    leads: dict[str, LeadQuality]
    verdict: Literal["usable", "limited", "unusable"]
    reasons: list[str] = Field(default_factory=list)
    beat_agreement: float | None = None    # bSQI: multi-lead beats vs the beats at least half the leads see
    beats_disputed: bool = False           # bSQI short of a full reading: beat-by-beat rhythm statements withheld
    mains_filter_hz: list[float] = Field(default_factory=list)   # notch filters applied before measurement
    electrode_findings: list[Literal["limb_lead_reversal", "inverted_polarity", "limb_lead_inconsistency"]] = Field(
        default_factory=list)
    withheld_codes: list[str] = Field(default_factory=list)      # fired, but on criteria a finding makes unreliable
    missing_leads: list[str] = Field(default_factory=list)       # not in the recording (reduced-lead ECG)
    unusable_leads: list[str] = Field(default_factory=list)      # recorded but not measured (flat, noisy, ...)
    not_evaluated_codes: list[str] = Field(default_factory=list)  # every rule needs a lead or measure not there
    muscle_filter_hz: float | None = None                        # low-pass applied against muscle noise
    uncertain_codes: list[str] = Field(default_factory=list)     # fired on amplitudes a filter lowers
    einthoven: dict[str, float] = Field(default_factory=dict)    # residual / tolerance per law checked
    pacing: PacingFinding | None = None

    def usable_leads(self) -> list[str]:
        """Leads that may be measured: good or noisy (noisy leads are measured with lower confidence)."""
        return [ld for ld, q in self.leads.items() if q.state in ("good", "noisy")]


# ------------------------------------------------------------------ statements and knowledge documents
FIRE_THRESHOLD = 0.5


@lru_cache(maxsize=1)
def scp_codes() -> dict[str, dict]:
    """The 71 PTB-XL SCP-ECG statements: code -> description, kinds, superclass, subclass."""
    text = resources.files("ragecg.resources").joinpath("scp_codes.json").read_text(encoding="utf-8")
    return {row["code"]: row for row in json.loads(text)}


SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


class Source(BaseModel):
    id: str
    cite: str


class Condition(BaseModel):
    measure: str
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float | bool
    source: str
    leads: list[str] | None = None
    min_leads: int = 1
    sex: Literal["M", "F"] | None = None
    scale: float | None = None

    @field_validator("leads")
    @classmethod
    def _known_leads(cls, v):
        if v is not None:
            bad = [ld for ld in v if ld not in STANDARD_LEADS]
            if bad:
                raise ValueError(f"unknown lead(s) {bad}")
        return v


class Rule(BaseModel):
    code: str
    match: Literal["all", "any"] = "all"
    conditions: list[Condition]
    # same_leads: conditions of this ("all") rule over the same lead list must hold in the same leads (e.g. a
    # Q wave >= 30 ms AND >= 0.1 mV deep in each of two contiguous leads, not a long Q in one lead and a deep
    # one in another)
    same_leads: bool = False


class Codes(BaseModel):
    scp: list[str] = Field(default_factory=list)
    snomed: list[str] = Field(default_factory=list)


class KnowledgeDoc(BaseModel):
    id: str
    title: str
    codes: Codes = Field(default_factory=Codes)
    superclass: list[str] | str | None = None
    sources: list[Source]
    reviewed: _dt.date | str | None = None
    version: str | int | None = None
    criteria: list[Rule] = Field(default_factory=list)
    body: str = ""
    path: str = ""
    sha256: str = ""

    @field_validator("id")
    @classmethod
    def _id_slug(cls, v):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", v):
            raise ValueError("id must be lower-case letters, digits, '.', '_' or '-'")
        return v

    def source_ids(self) -> set[str]:
        return {s.id for s in self.sources}


# ------------------------------------------------------------------ candidates
class ConditionResult(BaseModel):
    measure: str
    op: str
    threshold: float | bool
    value: float | bool | None           # the deciding value (the k-th lead's for lead lists)
    lead: str | None = None
    leads_met: list[str] = Field(default_factory=list)
    score: float
    met: bool
    source: str
    note: str | None = None

    @property
    def evidence_key(self) -> str:
        return f"{self.measure}[{self.lead}]" if self.lead else self.measure


class CodeCandidate(BaseModel):
    code: str
    description: str
    superclass: str | None
    score: float
    fired: bool
    doc_ids: list[str] = Field(default_factory=list)
    conditions: list[ConditionResult] = Field(default_factory=list)   # of the best rule


class Candidates(BaseModel):
    """A score for every known code (so that AUC can be computed), and the fired ones."""

    scores: dict[str, float]
    candidates: list[CodeCandidate]        # every code with at least one rule, best first

    def fired(self) -> list[CodeCandidate]:
        return [c for c in self.candidates if c.fired]

    def top(self, n: int) -> list[CodeCandidate]:
        return self.candidates[:n]


# ------------------------------------------------------------------ evidence
class Passage(BaseModel):
    passage_id: str          # "<doc_id>#<n>", unique in an index; never contains '['
    doc_id: str
    section: str = ""
    text: str
    source: str = ""          # citation(s) of the document
    similarity: float = 0.0   # cosine similarity of the passage to the query (dense embedding)
    title: str = ""           # the document's title
    score: float = 0.0        # the ranking score: reciprocal rank fusion (hybrid), cosine (dense) or BM25
    codes: list[str] = Field(default_factory=list)   # SCP statements the passage's document covers


class Evidence(BaseModel):
    query: str
    passages: list[Passage] = Field(default_factory=list)
    measurements: dict[str, float | int | bool] = Field(default_factory=dict)  # evidence key -> value

    def keys(self) -> set[str]:
        """Every key a narrative sentence may cite."""
        return set(self.measurements) | {p.passage_id for p in self.passages}




# ------------------------------------------------------------------ statement logic and decisions
class LogicRule(BaseModel):
    """A definite statement `by` removes the statements it subsumes or excludes (knowledge/statement_logic.yaml)."""

    by: str
    relation: Literal["subsumes", "excludes"]
    source: str
    why: str
    suppresses: list[str]


class StatementLogic(BaseModel):
    version: int | str
    reviewed: _dt.date | str | None = None
    sources: list[Source]
    rules: list[LogicRule] = Field(default_factory=list)
    normal_statements: list[str] = Field(default_factory=list)
    minor_statements: list[str] = Field(default_factory=list)
    borderline_statements: list[str] = Field(default_factory=list)
    exact_statements: list[str] = Field(default_factory=list)
    path: str = ""


class ConditionStatus(BaseModel):
    key: str
    value: float | bool | None
    threshold: float | bool
    op: str
    margin: float | None          # signed, in the key's unit: > 0 past the threshold
    uncertainty: float
    status: Literal["definite", "borderline", "not met"]


class Statement(BaseModel):
    code: str
    description: str
    superclass: str | None = None
    status: Literal["definite", "borderline"]
    conditions: list[ConditionStatus] = Field(default_factory=list)


class Suppressed(BaseModel):
    code: str
    by: str
    relation: str
    why: str
    source: str


class Category(BaseModel):
    name: Literal["Normal ECG", "Otherwise normal ECG", "Borderline ECG", "Abnormal ECG"]
    because: list[str] = Field(default_factory=list)    # codes and measurement findings that decided it

    @property
    def text(self) -> str:
        return self.name + (f" ({'; '.join(self.because)})" if self.because else "")


class Decisions(BaseModel):
    statements: list[Statement] = Field(default_factory=list)       # definite and borderline, after the logic
    suppressed: list[Suppressed] = Field(default_factory=list)
    normal_limits: list[str] = Field(default_factory=list)          # NORM limits that stand against normal
    normal_limits_definite: bool = False                            # a limit failed beyond its uncertainty
    category: Category = Field(default_factory=lambda: Category(name="Borderline ECG"))

    def definite(self) -> list[str]:
        return [s.code for s in self.statements if s.status == "definite"]

    def borderline(self) -> list[str]:
        return [s.code for s in self.statements if s.status == "borderline"]

    def chosen(self) -> list[str]:
        """Chosen codes: the definite statements, plus NORM for a (otherwise) normal ECG."""
        out = self.definite()
        if self.category.name in ("Normal ECG", "Otherwise normal ECG") and "NORM" not in out:
            out.append("NORM")
        return out


# ------------------------------------------------------------------ diagnosis
class Sentence(BaseModel):
    text: str
    evidence: list[str] = Field(default_factory=list)   # measurement keys and passage ids
    section: str | None = None                           # one of SECTIONS
    origin: Literal["template", "llm"] = "template"


class FinalCode(BaseModel):
    code: str
    description: str
    superclass: str | None = None
    confidence: float
    decided_by: Literal["criteria", "llm", "criteria+llm"] = "criteria"


class LLMInfo(BaseModel):
    status: Literal["ok", "disabled", "timeout", "failed", "invalid"] = "disabled"
    backend: str | None = None
    model: str | None = None
    model_sha256: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float | None = None
    ttft_s: float | None = None
    cached_prompt_tokens: int | None = None
    decode_calls: int | None = None      # llama.cpp decode calls for the answer (fixed text goes in batches)
    dropped_passages: list[str] = Field(default_factory=list)   # cut by the prompt token budget
    truncated: bool = False              # the answer hit max_tokens; complete sentences were kept
    sentences_raw: int | None = None     # narrative sentences the LLM wrote
    sentences_keys_valid: int | None = None   # ... of which every cited key was one it was shown
    error: str | None = None


class Diagnosis(BaseModel):
    mode: Literal["criteria-only", "llm"]
    codes: list[FinalCode]                     # chosen: definite statements (+ NORM for a normal ECG)
    borderline: list[FinalCode] = Field(default_factory=list)   # printed as "borderline ...", not chosen
    category: Category | None = None           # Normal / Otherwise normal / Borderline / Abnormal ECG
    suppressed: list[Suppressed] = Field(default_factory=list)  # removed by the statement logic
    scores: dict[str, float]                   # final per-code score in [0, 1], every known code
    narrative: list[Sentence]
    added_by_llm: list[str] = Field(default_factory=list)
    removed_by_llm: list[str] = Field(default_factory=list)
    stripped_keys: list[str] = Field(default_factory=list)
    stripped_codes: list[str] = Field(default_factory=list)
    offered_codes: list[str] = Field(default_factory=list)
    dropped_sentences: dict[str, int] = Field(default_factory=dict)   # reason -> count (LLM sentences)
    llm: LLMInfo = Field(default_factory=LLMInfo)


# ------------------------------------------------------------------ report
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
    device_measurements: dict[str, float] = Field(default_factory=dict)   # the file's own global values
    disclaimer: str = DISCLAIMER
