"""The report as a FHIR R4 Bundle (type `collection`): one DiagnosticReport, one Observation per global
measurement, and a Device naming ragecg and its version. Plain dicts (JSON); `validate_bundle` checks them
with the `fhir.resources` models.

Codes and systems:

* DiagnosticReport.code: LOINC 11524-6 "EKG study"; category HL7 v2 table 0074 `EC` (Electrocardiac).
  status `preliminary`: the report is machine-generated and not final until a physician over-reads it.
* conclusionCode: for each emitted code, the SCP-ECG statement (PTB-XL's SCP-ECG acronym) in HL7's code
  system for the CEN/EN 1064 ECG diagnostic codes, `http://terminology.hl7.org/CodeSystem/CE`
  (OID 2.16.840.1.113883.6.80; HL7 Terminology marks it retired, but it is the registered identifier for
  these codes), plus SNOMED CT (`http://snomed.info/sct`) where ragecg/resources/challenge2021_to_scp.csv
  (PhysioNet/CinC Challenge 2021 dx mapping) gives one: the first SNOMED CT concept listed for that SCP code.
* Observations: LOINC heart rate 8867-4, P-R interval 8625-6, QRS duration 8633-0, Q-T interval 8634-8,
  Q-T interval corrected 8636-3 (Bazett, stated in `method`), P/QRS/T wave axis 8626-4 / 8632-2 / 8638-9
  (HL7 US Core clinical-test value set; the check digits verify). Units UCUM: `ms`, `/min`, `deg`.

No Patient resource and no subject: the bundle holds no name, identifier, birth date, sex or age.
Validation: fhir.resources 8.3.0 ships R5 at `fhir.resources`, and R4B (4.3.0) at `fhir.resources.R4B`;
R4 (4.0.1) itself is not shipped. Bundle, DiagnosticReport, Observation and Device as used here are the
same in R4 and R4B, so the R4B models are the check.
"""
from __future__ import annotations

import csv
import hashlib
import uuid
from functools import lru_cache
from importlib import resources

from ragecg.values import Report

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
SCP_ECG = "http://terminology.hl7.org/CodeSystem/CE"
UCUM = "http://unitsofmeasure.org"
EKG_STUDY = ("11524-6", "EKG study")
# measurement key -> (LOINC code, LOINC display, UCUM code, unit shown, method)
OBSERVATIONS = {
    "heart_rate_bpm": ("8867-4", "Heart rate", "/min", "beats/minute", None),
    "pr_interval_ms": ("8625-6", "P-R interval", "ms", "ms", None),
    "qrs_duration_ms": ("8633-0", "QRS duration", "ms", "ms", None),
    "qt_interval_ms": ("8634-8", "Q-T interval", "ms", "ms", None),
    "qtc_bazett_ms": ("8636-3", "Q-T interval corrected", "ms", "ms", "Bazett (QT / sqrt(RR in s))"),
    "p_axis_deg": ("8626-4", "P wave axis", "deg", "deg", None),
    "qrs_axis_deg": ("8632-2", "QRS axis", "deg", "deg", None),
    "t_axis_deg": ("8638-9", "T wave axis", "deg", "deg", None),
}


@lru_cache(maxsize=1)
def scp_to_snomed() -> dict[str, str]:
    """SCP code -> SNOMED CT concept id: the first row of challenge2021_to_scp.csv for each SCP code."""
    text = resources.files("ragecg.resources").joinpath("challenge2021_to_scp.csv").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for row in csv.DictReader(text.splitlines()):
        out.setdefault(row["scp_code"], row["snomed_ct"])
    return out


def _urn(seed: str, part: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'ragecg:{seed}:{part}')}"


def _conclusion_code(code: str, description: str) -> dict:
    coding = [{"system": SCP_ECG, "code": code, "display": description}]
    snomed = scp_to_snomed().get(code)
    if snomed:
        coding.append({"system": SNOMED, "code": snomed})
    return {"coding": coding, "text": description}


def _observation(key: str, value: float, device_ref: str) -> dict:
    loinc, display, ucum, unit, method = OBSERVATIONS[key]
    obs = {
        "resourceType": "Observation", "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "procedure", "display": "Procedure"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
        "valueQuantity": {"value": round(float(value), 1), "unit": unit, "system": UCUM, "code": ucum},
        "device": {"reference": device_ref},
        "note": [{"text": f"ragecg measurement `{key}` (global value over all usable leads)."}],
    }
    if method:
        obs["method"] = {"text": method}
    return obs


def conclusion_text(report: Report) -> str:
    """Codes, then the narrative, then the disclaimer: the DiagnosticReport's conclusion."""
    d = report.diagnosis
    parts = ["; ".join(f"{c.description} ({c.code}, confidence {c.confidence:.2f})" for c in d.codes)
             or "No statement reached its criteria."]
    parts += [s.text for s in d.narrative]
    parts.append(report.disclaimer)
    return "\n".join(parts)


def report_to_fhir(report: Report) -> dict:
    """A FHIR R4 Bundle (collection) for `report`; entry ids are stable for the same report content."""
    seed = hashlib.sha256(report.model_dump_json().encode("utf-8")).hexdigest()[:32]
    device_url = _urn(seed, "device")
    device = {"resourceType": "Device", "status": "active",
              "deviceName": [{"name": "ragecg", "type": "model-name"}],
              "version": [{"value": report.versions.package}],
              "note": [{"text": "Software: training-free 12-lead ECG interpretation. "
                                + (f"LLM {report.versions.model}." if report.versions.model else "Criteria only.")}]}
    entries = [{"fullUrl": device_url, "resource": device}]
    results = []
    for key in OBSERVATIONS:
        value = getattr(report.measurements, key, None)
        if value is None:
            continue
        url = _urn(seed, key)
        entries.append({"fullUrl": url, "resource": _observation(key, value, device_url)})
        results.append({"reference": url})
    dr = {
        "resourceType": "DiagnosticReport", "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "EC",
                                  "display": "Electrocardiac (e.g., EKG, EEC, Holter)"}]}],
        "code": {"coding": [{"system": LOINC, "code": EKG_STUDY[0], "display": EKG_STUDY[1]}], "text": EKG_STUDY[1]},
        "result": results,
        "conclusion": conclusion_text(report),
        "conclusionCode": [_conclusion_code(c.code, c.description) for c in report.diagnosis.codes],
    }
    if not dr["result"]:
        del dr["result"]
    if not dr["conclusionCode"]:
        del dr["conclusionCode"]
    entries.insert(0, {"fullUrl": _urn(seed, "report"), "resource": dr})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def validate_bundle(bundle: dict):
    """Parse `bundle` with the fhir.resources R4B models; raises pydantic's ValidationError when invalid."""
    from fhir.resources.R4B.bundle import Bundle
    return Bundle.model_validate(bundle)
