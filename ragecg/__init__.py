"""ragecg: training-free 12-lead ECG interpretation (measurements, cited criteria, retrieval, local LLM)."""
import sys
import types

__version__ = "0.1.0"


def diagnose(*args, **kwargs):
    from .pipeline import diagnose as _diagnose
    return _diagnose(*args, **kwargs)


def measure(*args, **kwargs):
    from .pipeline import measure as _measure
    return _measure(*args, **kwargs)


class _Package(types.ModuleType):
    """Importing the submodule `ragecg.measure` makes Python set the package attribute `measure` to that
    module, which would hide the API function `ragecg.measure()`; the functions keep their names here
    (the submodule stays importable: `from ragecg.measure import ...`)."""

    def __setattr__(self, name, value):
        if name in ("diagnose", "measure") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
