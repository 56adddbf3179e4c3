"""The bad-input corpus: each kind is generated on demand from a real LUDB record (never committed).

A `Kind` says how to build the input in a temporary folder, which exit code both `ragecg diagnose
--no-llm` and `ragecg measure` must give, and a regular expression the one-line error must match.
Kinds with exit 0 must work and give sane output (checked in test_bad_input.py).

Base record: LUDB 58 (development half, records 1-100; sinus rhythm, no conduction or hypertrophy
label in ludb.csv), 500 Hz, 10 s, 12 leads.

    python -m tests.reliability.corpus     # prints the docs/reliability.md table (runs every kind)
"""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

BASE_RECORD = "ludb/data/58"
FS = 500.0
LUDB_NAMES = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
# A fake patient identity written into header comments by the safety tests; it must never be echoed.
FAKE_PATIENT = ["<name>: Zebulon Quaxley-Fitzwarren", "<patient id>: MRN-7Q4X9-20240117",
                "<age>: 47", "<sex>: F", "<diagnoses>: Rhythm: sinus rhythm."]


@functools.lru_cache(maxsize=4)
def base_signal(data_dir: str, record: str = BASE_RECORD) -> np.ndarray:
    """The base record's physical signal (samples x 12, mV, LUDB lead order): LUDB's stored values are
    microvolts, its header gains scale every lead to 1 mV peak-to-peak (SOURCES.md), which Einthoven's
    law flags (issue 18)."""
    import wfdb
    rec = wfdb.rdrecord(str(Path(data_dir) / record), physical=False)
    assert [n.lower() for n in rec.sig_name] == LUDB_NAMES, rec.sig_name
    sig = rec.d_signal.astype(np.float64) / 1000.0
    sig.setflags(write=False)
    return sig


def write_record(folder: Path, name: str, sig: np.ndarray, *, names: list[str] | None = None, fs: float = FS,
                 units: str | list[str] = "mV", gain: float | None = None, comments: list[str] | None = None) -> Path:
    """Write a WFDB record (format 16) and return its .hea path. NaN samples become WFDB's invalid value."""
    import wfdb
    names = names or LUDB_NAMES[: sig.shape[1]]
    n = len(names)
    if gain is None:
        peak = float(np.nanmax(np.abs(sig))) if np.isfinite(sig).any() else 1.0
        gain = 1000.0 if peak < 30.0 else 30000.0 / peak
    unit_list = [units] * n if isinstance(units, str) else list(units)
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=unit_list, sig_name=names, p_signal=sig, fmt=["16"] * n,
                adc_gain=[gain] * n, baseline=[0] * n, comments=comments or [], write_dir=str(folder))
    return folder / f"{name}.hea"


def edit_header(hea: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    lines = hea.read_text(encoding="utf-8").splitlines()
    hea.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return hea


def _base(data: Path) -> np.ndarray:
    return base_signal(str(data)).copy()


def _clean(tmp: Path, data: Path, name: str = "rec", **kw) -> Path:
    return write_record(tmp, name, _base(data), **kw)


def _set_record_line(field: int, value: str):
    def edit(lines):
        parts = lines[0].split()
        parts[field] = value
        return [" ".join(parts)] + lines[1:]
    return edit


def _with_signal(fn: Callable[[np.ndarray], np.ndarray], **kw):
    def make(tmp: Path, data: Path) -> Path:
        return write_record(tmp, "rec", fn(_base(data)), **kw)
    return make


def _leads(*idx: int):
    def make(tmp: Path, data: Path) -> Path:
        sig = _base(data)
        return write_record(tmp, "rec", sig[:, list(idx)], names=[LUDB_NAMES[i] for i in idx])
    return make


# ---------------------------------------------------------------- signal modifications
def la_ra_swap(sig: np.ndarray) -> np.ndarray:
    """Left- and right-arm electrodes exchanged: I inverted, II<->III, aVR<->aVL, aVF unchanged."""
    out = sig.copy()
    out[:, 0] = -sig[:, 0]
    out[:, 1], out[:, 2] = sig[:, 2], sig[:, 1]
    out[:, 3], out[:, 4] = sig[:, 4], sig[:, 3]
    return out


def _mains(freq: float, amp_mv: float = 0.2):
    def fn(sig):
        t = np.arange(sig.shape[0]) / FS
        return sig + amp_mv * np.sin(2 * np.pi * freq * t)[:, None]
    return fn


def _baseline_wander(sig):
    t = np.arange(sig.shape[0]) / FS
    phases = np.linspace(0, np.pi, sig.shape[1])
    return sig + 0.8 * np.sin(2 * np.pi * 0.25 * t[:, None] + phases) + 0.3 * np.sin(2 * np.pi * 0.07 * t[:, None])


def _electrode_motion(sig):
    """Electrode-motion-like artefact: NeuroKit2's random artefact bursts plus laplacian noise, on every lead."""
    import neurokit2 as nk
    out = sig.copy()
    for j in range(sig.shape[1]):
        out[:, j] = nk.signal_distort(sig[:, j], sampling_rate=int(FS), noise_shape="laplace", noise_amplitude=0.02,
                                      noise_frequency=[5, 10], artifacts_amplitude=0.3, artifacts_frequency=2,
                                      artifacts_number=5, random_state=100 + j, silent=True)
    return out


def r_peaks(sig: np.ndarray) -> np.ndarray:
    """R peaks of lead II (NeuroKit2), to place pacemaker spikes."""
    import neurokit2 as nk
    _, info = nk.ecg_peaks(nk.ecg_clean(sig[:, 1], sampling_rate=int(FS)), sampling_rate=int(FS))
    return np.asarray(info["ECG_R_Peaks"], dtype=int)


def _paced(sig):
    """Pacemaker stimuli: 1-sample (2 ms) 4 mV spikes 40 ms before each QRS, on every lead (bipolar pacing
    artefacts are 2-20 mV at the skin and 0.5-2 ms wide: Kligfield et al., AHA 2007 Part I, sampling section)."""
    out = sig.copy()
    for r in r_peaks(sig):
        k = r - int(0.04 * FS)
        if k > 0:
            out[k, :] += 4.0
    return out


def _nan_few(sig):
    sig = sig.copy()
    sig[1000:1025, :] = np.nan   # 50 ms dropout in every lead (0.5 %)
    return sig


def _nan_most(sig):
    sig = sig.copy()
    sig[::2, :] = np.nan          # half the samples of every lead
    return sig


def _clip(sig):
    lo, hi = np.percentile(sig, [20, 80], axis=0)
    return np.clip(sig, lo, hi)


def _muscle(sig):
    from scipy import signal as sps
    w = np.random.default_rng(11).standard_normal(sig.shape)
    band = sps.sosfiltfilt(sps.butter(4, [10 / (FS / 2), 150 / (FS / 2)], "band", output="sos"), w, axis=0)
    return sig + 0.1 * band / band.std(axis=0)


def _electrode_motion_heavy(sig):
    """Electrode motion in the ECG's own band (the 'em' model of bench/noise.py): Gaussian noise band-passed
    1-20 Hz, switched on in 0.5-2 s bursts at independent times in each lead, SD half the lead's peak-to-peak
    while on (about the size of the QRS). (Bursts that hit every lead at the same moments are not caught: docs/reliability.md.)"""
    from scipy import signal as sps
    rng = np.random.default_rng(13)
    band = sps.sosfiltfilt(sps.butter(4, [1 / (FS / 2), 20 / (FS / 2)], "band", output="sos"),
                           rng.standard_normal(sig.shape), axis=0)
    env = np.zeros(sig.shape)
    for j in range(sig.shape[1]):
        t = 0
        while t < sig.shape[0]:
            dur = int(rng.uniform(0.5, 2.0) * FS)
            if rng.random() < 0.5:
                env[t:t + dur, j] = np.hanning(min(dur, sig.shape[0] - t))
            t += dur
    return sig + 0.5 * np.ptp(sig, axis=0) * band / band.std(axis=0) * env   # 0.5 x each lead's peak-to-peak


def _noise_only(sig):
    return np.random.default_rng(7).normal(0, 0.3, sig.shape)


def _long(minutes: float):
    """The base record's whole beats (first to last R peak, cut 300 ms before each) repeated: every RR
    interval of the result, seams included, is one of the real record's."""
    def make(tmp: Path, data: Path) -> Path:
        sig = _base(data)
        r = r_peaks(sig)
        d = int(0.3 * FS)
        beats = sig[r[0] - d: r[-1] - d]
        reps = int(np.ceil(minutes * 60 * FS / beats.shape[0]))
        return write_record(tmp, "long", np.tile(beats, (reps, 1))[: int(minutes * 60 * FS)])
    return make


# ---------------------------------------------------------------- file-level kinds
def _missing(tmp, data):
    return tmp / "absent.hea"


def _directory(tmp, data):
    d = tmp / "a_folder"
    d.mkdir()
    return d


def _empty(tmp, data):
    p = tmp / "empty.hea"
    p.write_bytes(b"")
    return p


def _binary(tmp, data):
    p = tmp / "garbage.hea"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


def _prose(tmp, data):
    p = tmp / "notes.hea"
    p.write_text("Dear colleague,\nplease find the ECG attached.\n", encoding="utf-8")
    return p


def _n_sig(delta: int):
    def make(tmp, data):
        hea = _clean(tmp, data)
        return edit_header(hea, _set_record_line(1, str(12 + delta)))
    return make


def _no_dat(tmp, data):
    hea = _clean(tmp, data)
    (tmp / "rec.dat").unlink()
    return hea


def _truncate_dat(keep_bytes: int):
    def make(tmp, data):
        hea = _clean(tmp, data)
        dat = tmp / "rec.dat"
        dat.write_bytes(dat.read_bytes()[:keep_bytes])
        return hea
    return make


def _dat_longer(tmp, data):
    hea = _clean(tmp, data)
    with open(tmp / "rec.dat", "ab") as fh:
        fh.write(b"\x00\x01" * 12 * 500)      # one more second of frames than the header says
    return hea


def _fmt(code: str):
    def make(tmp, data):
        hea = _clean(tmp, data)
        return edit_header(hea, lambda ls: [ls[0]] + [ln.replace(" 16 ", f" {code} ", 1) for ln in ls[1:]])
    return make


def _fs(value: str):
    def make(tmp, data):
        return edit_header(_clean(tmp, data), _set_record_line(2, value))
    return make


def _sig_len_zero(tmp, data):
    return edit_header(_clean(tmp, data), _set_record_line(3, "0"))


def _rename_leads(names: list[str]):
    def make(tmp, data):
        return write_record(tmp, "rec", _base(data), names=names)
    return make


def _mixed_units(tmp, data):
    return write_record(tmp, "rec", _base(data), units=["mV"] * 6 + ["uV"] * 6)


def _unit(u: str):
    def make(tmp, data):
        return write_record(tmp, "rec", _base(data), units=u)
    return make


def _dat_outside_folder(tmp, data):
    """Header in sub/ naming its signal file as ../rec.dat (a path out of the record's folder)."""
    _clean(tmp, data)
    sub = tmp / "sub"
    sub.mkdir()
    hea = sub / "rec.hea"
    shutil.copy(tmp / "rec.hea", hea)
    return edit_header(hea, lambda ls: [ls[0]] + [ln.replace("rec.dat", "../rec.dat", 1) for ln in ls[1:]])


def _dotdot_argument(tmp, data):
    """A legitimate path with ../ in it (the record exists): must work."""
    _clean(tmp, data)
    (tmp / "elsewhere").mkdir()
    return Path(os.path.join(str(tmp / "elsewhere"), "..", "rec.hea"))


def _unicode_record_name(tmp, data):
    """A non-ASCII record name written into the header (WFDB headers are ASCII: refused, not mangled)."""
    name = "électrocardiogramme_心电图"
    hea = _clean(tmp, data, name="plain")
    (tmp / "plain.dat").rename(tmp / f"{name}.dat")
    new = tmp / f"{name}.hea"
    new.write_text(hea.read_text(encoding="utf-8").replace("plain", name), encoding="utf-8")
    hea.unlink()
    return new


def _unicode_long_path(tmp, data):
    """A non-ASCII folder name (with a space) and a 150-character ASCII record name: must work."""
    folder = tmp / "Überprüfung 心电图 données"
    return _clean(folder, data, name="r" * 150)


def _duplicated_leads(tmp, data):
    hea = _clean(tmp, data)
    return edit_header(hea, lambda ls: [ls[0], ls[1], ls[2].rsplit(" ", 1)[0] + " i"] + ls[3:])


def _garbage_xml(tmp, data):
    p = tmp / "ecg.xml"
    p.write_bytes(b"<?xml version='1.0'?><RestingECG><Waveform><LeadData>" + b"\x00\xff" * 100)
    return p


def _extra_leads(tmp, data):
    """15 signals: the 12 leads plus Frank vx, vy, vz (as in PTB): the extra ones are ignored."""
    sig = _base(data)
    return write_record(tmp, "rec", np.column_stack([sig, sig[:, [0, 5, 6]] * 0.5]), names=LUDB_NAMES + ["vx", "vy", "vz"])


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class Kind:
    name: str
    what: str                      # one line for docs/reliability.md
    make: Callable[[Path, Path], Path]
    exit_code: int                 # both `diagnose --no-llm` and `measure`
    needle: str = ""               # regex the stderr line must match (errors)


KINDS: list[Kind] = [
    # --- input unreadable or invalid: exit 3
    Kind("missing_file", "path does not exist", _missing, 3, r"does not exist"),
    Kind("directory", "path is an empty directory", _directory, 3, r"directory"),
    Kind("empty_header", "0-byte .hea", _empty, 3, r"empty"),
    Kind("binary_header", "4 KiB of random bytes named .hea", _binary, 3, r"not a valid WFDB header"),
    Kind("prose_header", "a text file that is not a WFDB header, named .hea", _prose, 3, r"not a valid WFDB header"),
    Kind("header_more_signals", "header says 13 signals, describes 12", _n_sig(+1), 3, r"says 13 signals but describes 12"),
    Kind("header_fewer_signals", "header says 11 signals, describes 12", _n_sig(-1), 3, r"says 11 signals but describes 12"),
    Kind("missing_dat", "header names a .dat that does not exist", _no_dat, 3, r"does not exist"),
    Kind("truncated_dat", ".dat cut to 4000 bytes", _truncate_dat(4000), 3, r"truncated"),
    Kind("empty_dat", ".dat of 0 bytes", _truncate_dat(0), 3, r"truncated"),
    Kind("unsupported_format", "WFDB signal format 999", _fmt("999"), 3, r"unsupported WFDB signal format"),
    Kind("format_mismatch", "header says format 212, the file holds format 16", _fmt("212"), 3, r"checksum"),
    Kind("fs_zero", "sampling rate 0 Hz", _fs("0"), 3, r"sampling rate"),
    Kind("fs_negative", "sampling rate -500 Hz", _fs("-500"), 3, r"sampling-rate field"),
    Kind("fs_1hz", "sampling rate 1 Hz (5000 samples)", _fs("1"), 3, r"sampling rate"),
    Kind("fs_1mhz", "sampling rate 1 MHz (5000 samples)", _fs("1000000"), 3, r"sampling rate"),
    Kind("fs_text", "sampling rate field 'fast'", _fs("fast"), 3, r"sampling-rate field"),
    Kind("zero_length", "header gives 0 samples", _sig_len_zero, 3, r"no signal samples|samples"),
    Kind("too_short", "1.5 s record", _with_signal(lambda s: s[:750]), 3, r"at least 2 s"),
    Kind("too_long", "11-minute record (its first 10 minutes are read, with a warning)", _long(11), 0),
    Kind("unknown_lead_names", "12 signals named ch1..ch12", _rename_leads([f"ch{i}" for i in range(1, 13)]), 3,
         r"no standard ECG lead names"),
    Kind("duplicated_leads", "two signals named i", _duplicated_leads, 3, r"more than once"),
    Kind("mixed_units", "six leads in mV, six in uV", _mixed_units, 3, r"different units"),
    Kind("unknown_unit", "leads labelled mmHg", _unit("mmHg"), 3, r"unknown signal unit"),
    Kind("dat_outside_folder", "header names its signal file ../rec.dat", _dat_outside_folder, 3,
         r"not a valid WFDB header"),
    Kind("non_ascii_record_name", "record and .dat named électrocardiogramme_心电图 inside the header",
         _unicode_record_name, 3, r"not ASCII"),
    Kind("garbage_xml", "an .xml file that is not well-formed", _garbage_xml, 3, r"XML|not a|format"),
    # --- signal unusable (quality gate or no beats): exit 4
    Kind("all_zero", "every lead all zeros", _with_signal(lambda s: np.zeros_like(s)), 4, r"flat"),
    Kind("clipped", "every lead clipped at its 20th/80th percentile", _with_signal(_clip), 4, r"clipped|saturat"),
    Kind("nan_most", "half the samples of every lead NaN", _with_signal(_nan_most), 4, r"NaN"),
    Kind("microvolts_as_mv", "values in uV labelled mV (1000x too large)", _with_signal(lambda s: s * 1000.0), 4,
         r"units|beyond"),
    Kind("millivolts_as_uv", "values in mV labelled uV (1000x too small)", _unit("uV"), 4, r"flat"),
    Kind("noise_only", "Gaussian noise, no ECG (0.3 mV SD)", _with_signal(_noise_only), 4, r"noise"),
    Kind("electrode_motion_heavy", "1-20 Hz noise bursts (SD half the lead p-p) at independent times in each lead",
         _with_signal(_electrode_motion_heavy), 4, r"beats not confirmed"),
    Kind("muscle_noise", "10-150 Hz muscle-like noise at 6 dB SNR (0.1 mV SD)", _with_signal(_muscle), 4,
         r"muscle\) noise"),
    # --- odd but valid: must work (exit 0), sane output
    Kind("dc_offset", "+300 mV DC offset on every lead (IEC 60601-2-25 electrode offset)",
         _with_signal(lambda s: s + 300.0, gain=100.0), 0),
    Kind("mains_50hz_heavy", "0.2 mV 50 Hz mains (notch-filtered before measurement)", _with_signal(_mains(50)), 0),
    Kind("mains_60hz_heavy", "0.2 mV 60 Hz mains (notch-filtered before measurement)", _with_signal(_mains(60)), 0),
    Kind("mains_50hz_20uv", "20 uV 50 Hz mains interference (a typical residual)", _with_signal(_mains(50, 0.02)), 0),
    Kind("mains_60hz_20uv", "20 uV 60 Hz mains interference", _with_signal(_mains(60, 0.02)), 0),
    Kind("baseline_wander", "0.8 mV 0.25 Hz + 0.3 mV 0.07 Hz baseline wander", _with_signal(_baseline_wander), 0),
    Kind("electrode_motion", "NeuroKit2 artefact bursts + laplacian noise", _with_signal(_electrode_motion), 0),
    Kind("nan_few", "50 ms of NaN in every lead", _with_signal(_nan_few), 0),
    Kind("paced_spikes", "4 mV 2 ms pacing spikes 40 ms before each QRS", _with_signal(_paced), 0),
    Kind("eight_leads", "I, II, V1-V6 only (III, aVR, aVL, aVF derived)", _leads(0, 1, 6, 7, 8, 9, 10, 11), 0),
    Kind("extra_leads", "15 signals (12 leads + Frank vx, vy, vz)", _extra_leads, 0),
    Kind("one_lead", "only lead II (single-lead strip: interpreted, the missing leads listed)", _leads(1), 0),
    Kind("two_leads", "only I and II (Challenge 2-lead set)", _leads(0, 1), 0),
    Kind("three_leads", "only I, II, III (6 limb leads derived)", _leads(0, 1, 2), 0),
    Kind("dat_longer", ".dat one second longer than the header says (header wins, warning)", _dat_longer, 0),
    Kind("unicode_long_path", "non-ASCII folder name with a space, 150-character record name", _unicode_long_path, 0),
    Kind("dotdot_argument", "path argument with ../ that resolves to a record", _dotdot_argument, 0),
    Kind("la_ra_reversal", "left/right arm electrodes swapped (flagged, still measured)", _with_signal(la_ra_swap), 0),
    Kind("inverted_polarity", "every lead inverted (flagged, still measured)", _with_signal(lambda s: -s), 0),
]
KIND_BY_NAME = {k.name: k for k in KINDS}
assert len(KIND_BY_NAME) == len(KINDS)


def build(kind: str | Kind, tmp: Path, data: Path) -> Path:
    k = KIND_BY_NAME[kind] if isinstance(kind, str) else kind
    folder = tmp / k.name
    folder.mkdir(parents=True, exist_ok=True)
    return k.make(folder, data)


if __name__ == "__main__":  # the docs table: every kind run through `ragecg measure`
    import tempfile

    from ragecg.settings import get_settings
    from tests.reliability.clirun import run_batch

    data = get_settings().data_dir
    with tempfile.TemporaryDirectory() as td:
        paths = [build(k, Path(td), data) for k in KINDS]
        res = run_batch([["measure", str(p)] for p in paths])
    print("| kind | input | exit | message (stderr, `ragecg measure`; cut at 160 characters) | checked by |")
    print("|---|---|---|---|---|")
    for k, r in zip(KINDS, res):
        msg = r["stderr"].strip().splitlines()[-1] if r["stderr"].strip() else ""
        msg = msg.replace(td, "…").replace("|", "\\|")
        msg = msg if len(msg) <= 160 else msg[:159] + "…"
        tests = ("`test_measure_refuses_bad_input`, `test_diagnose_refuses_bad_input`" if k.exit_code else
                 "`test_measure_works_on_odd_but_valid_input`")
        print(f"| `{k.name}` | {k.what} | {r['rc']} | {msg} | {tests} |")
