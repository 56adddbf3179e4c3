"""Criteria stage: `Measurements` + knowledge documents -> `Candidates` (scored against the cited
thresholds of the documents), then the codes an electrode finding makes unreliable are withheld."""
from .evaluate import evaluate_criteria
from .withhold import withhold_unreliable_codes

__all__ = ["evaluate_criteria", "withhold_unreliable_codes"]
