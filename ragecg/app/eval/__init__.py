"""Batch evaluation on PTB-XL / PTB-XL+ (and Challenge 2021 folders): labels, the GE 12SL
baseline, a resumable runner (processes or Dask), metrics with bootstrap CIs, reports, comparison."""

# The PTB-XL tasks (labels.py defines them); here so the CLI can list them without importing pandas.
TASKS: tuple[str, ...] = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
