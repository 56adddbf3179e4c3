"""A non-editable install carries what the package needs at run time: the curated knowledge base
(as data files under <prefix>/share/ragecg/knowledge), the code-table resources and py.typed."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_knowledge_resources_and_py_typed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("ragecg-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {Path(n).name for n in names if "/share/ragecg/knowledge/" in n}
    expected = {p.name for p in (REPO / "knowledge").glob("*.md")}
    assert expected and expected <= shipped
    assert {"ragecg/py.typed", "ragecg/resources/scp_codes.json"} <= names
    viewer = {f"ragecg/app/static/{p.name}" for p in (REPO / "ragecg/app/static").iterdir()}   # the browser viewer
    assert {"ragecg/app/static/index.html", "ragecg/app/static/viewer.js"} <= viewer <= names
