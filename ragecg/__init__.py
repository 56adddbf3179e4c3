"""ragecg: training-free 12-lead ECG interpretation (measurements, cited criteria, retrieval, local LLM).

`ragecg.diagnose(path_or_ecg)` and `ragecg.measure(path_or_ecg)` are the Python API (`ragecg.pipeline`);
importing the package alone imports nothing else, so the command line starts fast.
"""
from .version import __version__


def diagnose(*args, **kwargs):
    """`ragecg.pipeline.diagnose`: a record path or an `Ecg` -> `Report`."""
    from .pipeline import diagnose as _diagnose   # the package stays light: the pipeline loads on first use
    return _diagnose(*args, **kwargs)


def measure(*args, **kwargs):
    """`ragecg.pipeline.measure`: a record path or an `Ecg` -> (`Measurements`, `Quality`)."""
    from .pipeline import measure as _measure
    return _measure(*args, **kwargs)


__all__ = ["__version__", "diagnose", "measure"]
