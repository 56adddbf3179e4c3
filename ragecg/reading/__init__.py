"""Reading stage: a record file (WFDB or a clinical format) -> `ragecg.values.Ecg`."""
from .leads import ecg_from_leads, standard_lead_name
from .record import read_record, read_wfdb

__all__ = ["ecg_from_leads", "read_record", "read_wfdb", "standard_lead_name"]
