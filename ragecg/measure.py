"""Stage 2 — measurements from an `Ecg` (implementation: median-beat 12-lead measurement, see below)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from .record import STANDARD_LEADS


class LeadMeasurements(BaseModel):
    """Per-lead amplitudes (mV) and durations (ms), measured on the lead's median beat."""

    p_amplitude_mv: float | None = None
    q_amplitude_mv: float | None = None      # negative deflection before R (<= 0), 0 when no Q
    q_duration_ms: float | None = None
    r_amplitude_mv: float | None = None      # >= 0
    r_prime_amplitude_mv: float | None = None
    s_amplitude_mv: float | None = None      # <= 0 (signed, as measured)
    s_prime_amplitude_mv: float | None = None
    t_amplitude_mv: float | None = None      # signed, largest deflection of T
    st_j_mv: float | None = None
    st_j60_mv: float | None = None
    st_j80_mv: float | None = None
    r_peak_time_ms: float | None = None      # QRS onset to R peak (ventricular activation time)
    qrs_net_mv: float | None = None          # R + S (signed), for axis


GLOBAL_KEYS = (
    "heart_rate_bpm", "rr_mean_ms", "rr_sd_ms", "rr_cv", "rr_min_ms", "rr_max_ms", "beat_count",
    "premature_beat_count", "pause_count", "p_waves_per_qrs", "p_present",
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
    premature_beat_count: int | None = None
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
