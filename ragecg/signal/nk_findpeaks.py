"""NeuroKit2's QRS detector (`neurokit2.ecg_findpeaks`) without importing the NeuroKit2 package.

`import neurokit2` runs the package's __init__, which imports every submodule and with them
scikit-learn and matplotlib (4+ s on a 2-core machine: nearly all of a one-off `ragecg measure`),
for the one function beats.detect_beats calls. Here the installed library's own files that define
it (ecg/ecg_findpeaks.py, signal/signal_smooth.py, signal/signal_sanitize.py, misc/_warnings.py)
are executed as modules of their own, never entered in sys.modules (a later `import neurokit2` is
unaffected), with an import hook for their imports:

* a relative import of a NeuroKit2 name gives that name from the files above, or else a stand-in
  that imports the real package on first call (names of other detectors, plotting, LOESS);
* matplotlib and pywt (plots and the wavelet detectors, which ragecg does not use) are imported
  when first used;
* anything else (numpy, pandas, scipy) is imported as usual.

The code that runs is NeuroKit2's, unchanged, so the peaks are the library's (checked against
`neurokit2.ecg_findpeaks` on real records: tests/test_nk_findpeaks.py). Where the files cannot be
loaded this way (another NeuroKit2 layout), `ecg_findpeaks` is the package's, imported as usual.
"""
from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import threading
import types
from pathlib import Path
from typing import Callable

# (package, name) -> the file of the installed neurokit2 that defines it
OWN_FILES = {("neurokit2.signal", "signal_smooth"): "signal/signal_smooth.py",
             ("neurokit2.signal", "signal_sanitize"): "signal/signal_sanitize.py",
             ("neurokit2.misc", "NeuroKitWarning"): "misc/_warnings.py"}
ENTRY_FILE = "ecg/ecg_findpeaks.py"
DEFERRED_TOP = ("matplotlib", "pywt")   # imported by those files for plots and other detectors only

_lock = threading.Lock()
_findpeaks: Callable | None = None
loaded_alone: bool | None = None       # True: the files alone; False: the whole package (fallback)


class _Deferred:
    """A module imported on first attribute access (`plt.subplots` imports matplotlib.pyplot then).
    Attributes that are submodules named in an import statement stay deferred."""

    def __init__(self, name: str, submodules: set[str]):
        self._name, self._submodules = name, submodules

    def __getattr__(self, attr: str):
        full = f"{self._name}.{attr}"
        if full in self._submodules:
            return _Deferred(full, self._submodules)
        return getattr(importlib.import_module(self._name), attr)


class _CallLater:
    """A NeuroKit2 function outside the loaded files: the real package's, imported at the first call."""

    def __init__(self, module: str, name: str):
        self._module, self._name = module, name

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module(self._module), self._name)(*args, **kwargs)


def _package_dir() -> Path:
    spec = importlib.util.find_spec("neurokit2")          # locates it; executes nothing
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("neurokit2 is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _load_alone() -> Callable:
    root = _package_dir()
    modules: dict[str, types.ModuleType] = {}
    submodules: set[str] = set()

    def load(rel: str) -> types.ModuleType:
        if rel in modules:
            return modules[rel]
        name = "neurokit2." + rel[:-3].replace("/", ".")
        path = root / rel
        loader = importlib.machinery.SourceFileLoader(name, str(path))     # the installed file, cached bytecode
        mod = types.ModuleType(name)
        mod.__file__, mod.__package__ = str(path), name.rsplit(".", 1)[0]
        mod.__builtins__ = {**builtins.__dict__, "__import__": hook}
        modules[rel] = mod
        loader.exec_module(mod)          # runs in mod.__dict__, so under the import hook set above
        return mod

    def hook(name, globals=None, locals=None, fromlist=(), level=0):
        if level > 0:
            package = importlib.util.resolve_name("." * level + name, (globals or {})["__package__"])
            ns = types.SimpleNamespace()
            for item in fromlist or ():
                rel = OWN_FILES.get((package, item))
                setattr(ns, item, getattr(load(rel), item) if rel else _CallLater(package, item))
            return ns
        top = name.split(".", 1)[0]
        if top in DEFERRED_TOP and not fromlist:
            parts = name.split(".")
            submodules.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
            return _Deferred(top, submodules)
        return builtins.__import__(name, globals, locals, fromlist, level)

    return load(ENTRY_FILE).ecg_findpeaks


def ecg_findpeaks(signal, sampling_rate: int, method: str = "neurokit") -> dict:
    """`neurokit2.ecg_findpeaks(signal, sampling_rate=..., method=...)`."""
    global _findpeaks, loaded_alone
    with _lock:
        if _findpeaks is None:
            try:
                _findpeaks, loaded_alone = _load_alone(), True
            except (ImportError, OSError, SyntaxError, AttributeError, KeyError, TypeError, ValueError):
                import neurokit2
                _findpeaks, loaded_alone = neurokit2.ecg_findpeaks, False
    return _findpeaks(signal, sampling_rate=sampling_rate, method=method)
