"""The single-record pipeline, composing the stages in one direction: read -> signal (quality, measure,
checks) -> criteria (evaluate, withhold) -> retrieve -> compose -> `Report`.

`Resources` holds what is loaded once per process (knowledge documents, index, LLM backend) so
that one record and 21,799 records run the same code without reloading anything per record.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ragecg.compose import compose_diagnosis, decide, system_prompt
from ragecg.criteria import evaluate_criteria, withhold_unreliable_codes
from ragecg.errors import UnusableSignalError
from ragecg.knowledge import knowledge_hash, load_criteria_documents, load_statement_logic
from ragecg.knowledge.index import ensure_index
from ragecg.llm import load_backend
from ragecg.reading import read_record
from ragecg.retrieve import QueryUnderstanding, retrieve_evidence, search_understood, understand_query
from ragecg.settings import Settings, default_knowledge_dirs, get_settings
from ragecg.signal import checked_signal, measure_ecg, with_beat_flags, with_measurement_checks, with_pacing_flags
from ragecg.values import Ecg, Evidence, KnowledgeDoc, Passage, Report, StatementLogic, VersionInfo
from ragecg.version import __version__


@dataclass
class Resources:
    settings: Settings = field(default_factory=get_settings)
    use_llm: bool = True
    use_retrieval: bool = True
    _docs: list[KnowledgeDoc] | None = None
    _logic: StatementLogic | None = None
    _index: object | None = None
    _backend: object | None = None
    _loading: Future | None = None

    def start_loading(self) -> None:
        """Load the LLM (model, static prefix's KV state) and the index in a background thread, so
        that a one-off `ragecg diagnose` overlaps them with importing, reading and measuring (the
        loading is mostly C code that releases the GIL; bench/llm.py --cold). Errors surface where
        the resource is first used, as without it."""
        if self._loading is None and (self.use_llm or self.use_retrieval):
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragecg-load")
            self._loading = pool.submit(self._load_all)
            pool.shutdown(wait=False)

    def variant(self, *, use_llm: bool, use_retrieval: bool) -> "Resources":
        """The same loaded resources with other switches (`ragecg serve`: --no-llm per request)."""
        self.wait_loaded()
        self.docs                               # loaded once here, shared by every variant
        return replace(self, use_llm=use_llm, use_retrieval=use_retrieval)

    def _load_all(self) -> None:
        if self.use_llm:
            backend = self._load_backend()
            if backend.caches_prefix:
                backend.prepare(system_prompt())
        if self.use_retrieval:
            self._index = ensure_index(self.settings)
            self._index.warm_up()

    def _load_backend(self):
        self._backend = load_backend(self.settings)
        return self._backend

    def wait_loaded(self) -> None:
        """Wait for the background loading; its error (e.g. a corrupt model) is raised here once."""
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.result()

    @property
    def docs(self) -> list[KnowledgeDoc]:
        if self._docs is None:
            self._docs = load_criteria_documents(self.settings)
        return self._docs

    @property
    def logic(self) -> StatementLogic:
        """The statement logic table (knowledge/statement_logic.yaml) of the decision layer: the first
        knowledge folder's that has one, else the shipped one (a custom folder of documents alone)."""
        if self._logic is None:
            self._logic = load_statement_logic([*self.settings.knowledge_dirs, *default_knowledge_dirs()])
        return self._logic

    @property
    def index(self):
        self.wait_loaded()
        if self._index is None:
            self._index = ensure_index(self.settings)
        return self._index

    @property
    def backend(self):
        self.wait_loaded()
        if self._backend is None:
            self._load_backend()
        return self._backend


def diagnose_ecg(ecg: Ecg, resources: Resources) -> Report:
    """Diagnose one `Ecg`. Raises UnusableSignalError when the quality gate refuses the record."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ecg, quality = checked_signal(ecg)          # mains interference removed where the gate finds it
    timings["quality_s"] = time.perf_counter() - t
    if quality.verdict == "unusable":
        raise UnusableSignalError("signal unusable: " + "; ".join(quality.reasons[:3]), path=Path(ecg.source_path).name)

    t = time.perf_counter()
    measurements = with_beat_flags(with_pacing_flags(measure_ecg(ecg, quality.usable_leads()), quality), quality)
    quality = with_measurement_checks(quality, measurements)   # e.g. LA/RA lead reversal
    timings["measure_s"] = time.perf_counter() - t

    t = time.perf_counter()
    candidates = evaluate_criteria(measurements, resources.docs, sex=ecg.sex)
    # e.g. LA/RA reversal: codes whose criteria read limb leads or the frontal axis are withheld
    candidates, quality = withhold_unreliable_codes(candidates, measurements, quality, resources.docs, ecg.sex)
    # definite / borderline statements, the statement logic, the overall category (compose/decision.py)
    decisions = decide(candidates, measurements, resources.logic, resources.docs,
                       paced=quality.pacing is not None and quality.pacing.kind in ("ventricular", "atrial", "dual"),
                       age_years=ecg.age_years)
    timings["criteria_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if resources.use_retrieval:
        evidence = retrieve_evidence(resources.index, measurements, candidates, k=resources.settings.knowledge.retrieve_k)
    else:
        evidence = Evidence(query="", measurements=measurements.flat())
    timings["retrieve_s"] = time.perf_counter() - t

    t = time.perf_counter()
    backend = resources.backend if resources.use_llm else None
    diagnosis = compose_diagnosis(measurements, quality, candidates, evidence, backend, resources.settings,
                                  decisions, resources.logic)
    timings["compose_s"] = time.perf_counter() - t

    versions = VersionInfo(package=__version__, knowledge_hash=knowledge_hash(resources.docs, resources.logic),
                           index_hash=getattr(resources._index, "index_hash", None),
                           model=diagnosis.llm.model, model_sha256=diagnosis.llm.model_sha256,
                           embedding_model=getattr(resources._index, "embedding_model_name", None))
    return Report(source=Path(ecg.source_path).name, source_format=ecg.source_format,
                  sampling_rate_hz=ecg.sampling_rate_hz, duration_s=round(ecg.duration_s, 3),
                  derived_leads=ecg.derived_leads, measurements=measurements, quality=quality,
                  candidate_scores=candidates.scores,
                  criteria=[c for c in candidates.candidates if c.score >= 0.1],
                  diagnosis=diagnosis, evidence=evidence, versions=versions,
                  timings_s={k: round(v, 4) for k, v in timings.items()},
                  device_statements=list(ecg.device_statements),
                  device_measurements=dict(ecg.device_measurements))


def diagnose(path_or_ecg: str | Path | Ecg, *, resources: Resources | None = None, **settings_overrides) -> Report:
    """Python API: diagnose a record path or an `Ecg`."""
    resources = resources or Resources(settings=get_settings(**settings_overrides))
    ecg = path_or_ecg if isinstance(path_or_ecg, Ecg) else read_record(path_or_ecg)
    return diagnose_ecg(ecg, resources)


def measure(path_or_ecg: str | Path | Ecg):
    """Python API: quality and measurements of a record, no diagnosis."""
    ecg = path_or_ecg if isinstance(path_or_ecg, Ecg) else read_record(path_or_ecg)
    ecg, quality = checked_signal(ecg)
    if quality.verdict == "unusable":
        raise UnusableSignalError("signal unusable: " + "; ".join(quality.reasons[:3]), path=Path(ecg.source_path).name)
    measurements = with_beat_flags(with_pacing_flags(measure_ecg(ecg, quality.usable_leads()), quality), quality)
    return measurements, with_measurement_checks(quality, measurements)


def understand_knowledge_query(text: str, resources: Resources, vocabulary=frozenset()) -> QueryUnderstanding:
    """A free-text knowledge query understood: stated values, the statements the knowledge base's
    criteria say they support (the criteria stage), abbreviations and typos (retrieve/understand.py)."""
    return understand_query(text, resources.docs, evaluate_criteria, vocabulary)


def search_knowledge(text: str, resources: Resources, k: int, *, mode: str | None = None,
                     understand: bool = True) -> tuple[QueryUnderstanding | None, list[Passage]]:
    """`ragecg knowledge search`: (how the query was understood or None, the k best passages);
    `understand=False` searches the text as typed."""
    index = resources.index
    if not understand:
        return None, index.search(text, k, mode=mode)
    understood = understand_knowledge_query(text, resources, index.vocabulary())
    return understood, search_understood(index, understood, k, mode=mode)
