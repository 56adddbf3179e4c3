"""PTB-XL task labels, exactly as the PTB-XL benchmark defines them.

Source: Strodthoff N, Wagner P, Schaeffter T, Samek W. "Deep learning for ECG analysis:
benchmarks and insights from PTB-XL". IEEE J Biomed Health Inform 25(5):1519-1528 (2021),
arXiv:2004.13701; code github.com/helme/ecg_ptbxl_benchmarking, `utils.compute_label_aggregations`
and `utils.select_data`.

How a record's labels are built (the same as their code):

* ``scp_codes`` of ``ptbxl_database.csv`` is a dict ``{statement: likelihood}`` (read with
  ``ast.literal_eval``). Every key counts, **whatever its likelihood value** (0, 15, 50, 80, 100
  all count), as in their code.
* ``scp_statements.csv`` (the dataset's own table) decides task membership:

  ============== ==================================================================
  task           classes
  ============== ==================================================================
  diagnostic     every statement with ``diagnostic == 1`` (44)
  subdiagnostic  ``diagnostic_subclass`` of the diagnostic statements (23)
  superdiagnostic ``diagnostic_class`` of the diagnostic statements (NORM MI STTC CD HYP)
  form           every statement with ``form == 1`` (19; NDT NST_ DIG LNGQT are both)
  rhythm         every statement with ``rhythm == 1`` (12)
  all            all 71 statements
  ============== ==================================================================

* A record is positive for a class when any of its statements is a member of the class.
* For each task, records with no label in that task are excluded from that task (their
  ``select_data`` drops rows whose label list is empty). So the record count differs per task.
* Classes are the task's classes present in the database (their ``min_samples=0``); at metric time
  a class with only one label value among the evaluated records is skipped and listed.

Scores of class aggregates (subclass, superclass) are the maximum over the member statements'
scores; a class is chosen when any member statement is chosen (`aggregate_scores`,
`aggregate_chosen`).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ragecg.errors import InputError

from . import TASKS  # noqa: E402,F401 (the six tasks; defined in ragecg/eval/__init__.py)
DATABASE_FILE = "ptbxl_database.csv"
STATEMENTS_FILE = "scp_statements.csv"
_DB_COLUMNS = ["ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"]  # no patient data read


def check_ptbxl_dir(ptbxl_dir: Path) -> None:
    """InputError (exit 3) unless the folder holds the PTB-XL metadata files."""
    d = Path(ptbxl_dir)
    if not d.is_dir():
        raise InputError("PTB-XL folder does not exist", path=str(d))
    for name in (DATABASE_FILE, STATEMENTS_FILE):
        if not (d / name).is_file():
            raise InputError(f"not a PTB-XL folder ({name} is missing)", path=str(d))


def load_statements(ptbxl_dir: Path) -> pd.DataFrame:
    """scp_statements.csv indexed by statement code (columns diagnostic, form, rhythm, ...)."""
    check_ptbxl_dir(ptbxl_dir)
    try:
        df = pd.read_csv(Path(ptbxl_dir) / STATEMENTS_FILE, index_col=0)
        for col in ("diagnostic", "form", "rhythm"):
            df[col] = df[col].fillna(0).astype(float)
        df["diagnostic_class"] = df["diagnostic_class"].astype(object)
        df["diagnostic_subclass"] = df["diagnostic_subclass"].astype(object)
    except (KeyError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{STATEMENTS_FILE} is not the PTB-XL statement table ({type(exc).__name__})",
                         path=str(ptbxl_dir)) from None
    return df


def load_database(ptbxl_dir: Path) -> pd.DataFrame:
    """ptbxl_database.csv (only ecg_id, scp_codes as dict, strat_fold, file names), indexed by ecg_id."""
    check_ptbxl_dir(ptbxl_dir)
    try:
        df = pd.read_csv(Path(ptbxl_dir) / DATABASE_FILE, usecols=_DB_COLUMNS, index_col="ecg_id")
        df["scp_codes"] = df["scp_codes"].apply(ast.literal_eval)
        df["strat_fold"] = df["strat_fold"].astype(int)
    except (KeyError, ValueError, SyntaxError, pd.errors.ParserError) as exc:
        raise InputError(f"{DATABASE_FILE} is not the PTB-XL database table ({type(exc).__name__})",
                         path=str(ptbxl_dir)) from None
    return df


@dataclass(frozen=True)
class Task:
    """A task's classes and, for each class, the SCP statements that belong to it."""

    name: str
    members: dict[str, tuple[str, ...]]

    @property
    def classes(self) -> list[str]:
        return sorted(self.members)


def task_definition(task: str, statements: pd.DataFrame) -> Task:
    """Classes of a task from scp_statements.csv (see the module docstring)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    members: dict[str, list[str]] = {}
    diag = statements[statements.diagnostic == 1.0]
    if task == "diagnostic":
        members = {code: [code] for code in diag.index}
    elif task in ("subdiagnostic", "superdiagnostic"):
        col = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
        for code, cls in diag[col].items():
            if isinstance(cls, str) and cls:
                members.setdefault(cls, []).append(code)
    elif task in ("form", "rhythm"):
        members = {code: [code] for code in statements[statements[task] == 1.0].index}
    else:
        members = {code: [code] for code in statements.index}
    return Task(task, {k: tuple(sorted(v)) for k, v in members.items()})


def record_labels(scp_codes: dict, task: Task) -> set[str]:
    """Classes of `task` a record is positive for (any member statement present, any likelihood)."""
    present = set(scp_codes)
    return {cls for cls, codes in task.members.items() if present.intersection(codes)}


def aggregate_scores(scores: dict[str, float], task: Task) -> dict[str, float]:
    """Per-class score: the maximum over the member statements' scores (0 when none is scored)."""
    return {cls: max((float(scores.get(c, 0.0)) for c in codes), default=0.0) for cls, codes in task.members.items()}


def aggregate_chosen(codes, task: Task) -> set[str]:
    """Classes chosen: any member statement chosen."""
    chosen = set(codes)
    return {cls for cls, members in task.members.items() if chosen.intersection(members)}
