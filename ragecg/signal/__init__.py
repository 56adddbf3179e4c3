"""Signal stage: `Ecg` -> `Quality` (the gate, mains notch) -> `Measurements` (median beats, rhythm)
-> measurement checks on the `Quality`."""
from .checks import lead_reversal_findings, with_beat_flags, with_measurement_checks, with_pacing_flags
from .measure import analyse_ecg, measure_ecg
from .quality import assess_quality, checked_signal

__all__ = ["analyse_ecg", "assess_quality", "checked_signal", "lead_reversal_findings", "measure_ecg",
           "with_beat_flags", "with_measurement_checks", "with_pacing_flags"]
