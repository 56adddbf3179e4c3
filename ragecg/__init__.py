"""ragecg: training-free 12-lead ECG interpretation (measurements, cited criteria, retrieval, local LLM)."""
__version__ = "0.1.0"


def diagnose(*args, **kwargs):
    from .pipeline import diagnose as _diagnose
    return _diagnose(*args, **kwargs)


def measure(*args, **kwargs):
    from .pipeline import measure as _measure
    return _measure(*args, **kwargs)
