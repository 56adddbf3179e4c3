"""Knowledge index: knowledge files -> chunks -> sentence-transformers vectors (exact FAISS search)
and BM25 (bm25s), fused by reciprocal rank fusion.

Layout under ``settings.indexes_dir``::

    ACTIVE                      one line: the hash of the index in use (switched with os.replace)
    <hash>/index.faiss          faiss.IndexFlatIP over L2-normalised vectors (inner product = cosine)
    <hash>/chunks.json          columns chunk_id, doc_id, n, section, text, source, sha256 (row i = vector i)
    <hash>/bm25/                bm25s's saved index: params/vocab JSON, CSC arrays as .npy (no pickle)
    <hash>/manifest.json        input file hashes, embedding model name + sha256, splitter and BM25
                                settings, package version, documents, sha256 of every file above

Search (`search_many`, `search_lines`): `hybrid` (default, settings.retrieval_mode) ranks every
passage by cosine similarity and by BM25 and fuses the rankings by reciprocal rank fusion,
score = sum over rankings of 1 / (k + rank) with k = 60 (Cormack, Clarke & Buettcher, SIGIR 2009),
so exact terms ("Sokolow", "Brugada", "rsR'") reach their documents while paraphrases still match
by meaning; `dense` and `lexical` use one ranking. Passages without a lexical match enter the
fusion through their dense rank only.

``<hash>`` is the sha256 of the inputs and settings (``_fingerprint``), so the same inputs give the
same directory and the same bytes (no timestamps anywhere). A build writes a temporary directory and
only then switches ACTIVE, so a failed build leaves the previous index working. Chunks whose sha256
is unchanged reuse the vectors stored in the previous index (read back with ``reconstruct_n``); only
new or changed chunks are embedded. Nothing here pickles: vectors live in the FAISS file, metadata
in JSON, and the embedding model must ship ``model.safetensors``. (Indexes of format 2 kept the chunk
columns in Parquet; their vectors are still reused by an incremental build.)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragecg.errors import IndexError_, InputError
from ragecg.settings import Settings, get_settings
from ragecg.values import Passage
from ragecg.version import __version__

from . import lexical
from .chunking import (MARKDOWN_HEADERS, SUFFIXES, Chunk, KnowledgeInput, documents_and_chunks,
                       scan_inputs, sha256_file, slug)
from .documents import has_front_matter, parse_markdown_doc, read_document_text, validate_document
from .embed import (embed_queries, embed_texts, embedding_model_dir, embedding_model_name, embedding_model_sha256,
                    prepare_query_encoder)

FORMAT_VERSION = 3            # 2: the BM25 part (bm25/) beside the FAISS index; 3: chunk columns in JSON
CHUNKS_FILE = "chunks.json"   # (format <= 2: chunks.parquet, read only to reuse vectors)
LEGACY_CHUNKS_FILE = "chunks.parquet"
RRF_K = 60                    # reciprocal rank fusion constant (Cormack et al. 2009)
REBUILD_HINT = "rebuild it with `ragecg knowledge build --force`"
CHUNK_COLUMNS = ("chunk_id", "doc_id", "n", "section", "text", "source", "sha256")


@dataclass
class BuildResult:
    path: Path
    index_hash: str
    n_docs: int
    n_chunks: int
    n_embedded: int
    n_reused: int
    seconds: float


# ------------------------------------------------------------------ fingerprint, files
def _fingerprint(settings: Settings, inputs: list[KnowledgeInput]) -> dict:
    model_dir = embedding_model_dir(settings)
    return {
        "format": FORMAT_VERSION,
        "package_version": __version__,
        "embedding_model": {"name": embedding_model_name(model_dir), "sha256": embedding_model_sha256(model_dir, settings),
                            "normalize_embeddings": True},
        "splitter": {"markdown_headers": [h for h, _ in MARKDOWN_HEADERS],
                     "chunk_size_chars": settings.chunk_size_chars,
                     "chunk_overlap_chars": settings.chunk_overlap_chars},
        "lexical": lexical.settings_fingerprint(),
        "inputs": [{"key": i.key, "sha256": i.sha256} for i in inputs],
    }


def _hash_of(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def _active_hash(settings: Settings) -> str | None:
    f = settings.indexes_dir / "ACTIVE"
    with contextlib.suppress(OSError):
        h = f.read_text(encoding="utf-8").strip()
        return h if re.fullmatch(r"[0-9a-f]{16}", h) else None
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _build_lock(settings: Settings):
    """One build at a time per index folder (parallel workers would otherwise all rebuild)."""
    settings.indexes_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:      # Windows: no advisory lock; the atomic switch still keeps ACTIVE valid
        yield
        return
    with open(settings.indexes_dir / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_index_dir(tmp: Path, fingerprint: dict, index_hash: str, docs: list[dict],
                     chunks: list[Chunk], vectors: np.ndarray) -> None:
    import faiss

    tmp.mkdir(parents=True)
    index = faiss.IndexFlatIP(int(vectors.shape[1]))
    if len(vectors):
        index.add(vectors)
    faiss.write_index(index, str(tmp / "index.faiss"))
    columns = {"chunk_id": [c.chunk_id for c in chunks], "doc_id": [c.doc_id for c in chunks],
               "n": [int(c.n) for c in chunks], "section": [c.section for c in chunks],
               "text": [c.text for c in chunks], "source": [c.source for c in chunks],
               "sha256": [c.sha256 for c in chunks]}
    (tmp / CHUNKS_FILE).write_bytes(json.dumps({"columns": columns}, ensure_ascii=False, sort_keys=True,
                                               separators=(",", ":")).encode("utf-8"))
    codes = {d["id"]: d.get("codes") or [] for d in docs}
    bm25_files = lexical.build([f"{c.embed_text}\n{' '.join(codes.get(c.doc_id, []))}" for c in chunks], tmp / "bm25")
    names = ["index.faiss", CHUNKS_FILE] + [f"bm25/{n}" for n in bm25_files]
    manifest = dict(fingerprint, index_hash=index_hash, dim=int(vectors.shape[1]), n_docs=len(docs),
                    n_chunks=len(chunks), documents=docs,
                    files={name: sha256_file(tmp / name) for name in names})
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _previous_vectors(settings: Settings, model_sha: str) -> dict[str, np.ndarray]:
    """chunk sha256 -> stored vector of the active index (empty when unusable: then re-embed)."""
    h = _active_hash(settings)
    if h is None:
        return {}
    try:       # the dense part only: an index of an older format (no BM25 part) still lends its vectors
        manifest, faiss_index, chunks = _read_dense(settings.indexes_dir / h)
    except Exception:  # noqa: BLE001 - anything unreadable: embed again
        return {}
    if manifest["embedding_model"]["sha256"] != model_sha or faiss_index.ntotal == 0:
        return {}
    vecs = faiss_index.reconstruct_n(0, faiss_index.ntotal)
    return {sha: vecs[i] for i, sha in enumerate(chunks["sha256"])}


def build_index(settings: Settings, *, force: bool = False) -> BuildResult:
    """Build (incrementally unless `force`) the index of the knowledge folders and make it ACTIVE."""
    try:
        return _build_index(settings, force=force)
    except OSError as exc:        # read-only or full RAGECG_HOME: the previous index stays ACTIVE
        raise _write_error(exc, "the knowledge index", settings.indexes_dir) from None


def _build_index(settings: Settings, *, force: bool) -> BuildResult:
    t0 = time.perf_counter()
    with _build_lock(settings):
        inputs = scan_inputs(settings)
        fingerprint = _fingerprint(settings, inputs)
        index_hash = _hash_of(fingerprint)
        target = settings.indexes_dir / index_hash
        if not force and target.is_dir():
            with contextlib.suppress(IndexError_):
                existing = load_index(target)
                _switch_active(settings, index_hash)
                n = existing.faiss_index.ntotal
                return BuildResult(target, index_hash, existing.manifest["n_docs"], n, 0, n,
                                   time.perf_counter() - t0)
        docs, chunks = documents_and_chunks(inputs, settings)
        model_dir = embedding_model_dir(settings)
        reuse = {} if force else _previous_vectors(settings, fingerprint["embedding_model"]["sha256"])
        todo = [i for i, c in enumerate(chunks) if c.sha256 not in reuse]
        fresh = embed_texts(model_dir, [chunks[i].embed_text for i in todo])
        dim = fresh.shape[1] if len(todo) else next(iter(reuse.values())).shape[0] if reuse \
            else embed_texts(model_dir, []).shape[1]
        vectors = np.zeros((len(chunks), dim), dtype=np.float32)
        for row, i in enumerate(todo):
            vectors[i] = fresh[row]
        for i, c in enumerate(chunks):
            if c.sha256 in reuse:
                vectors[i] = reuse[c.sha256]
        tmp = settings.indexes_dir / f".tmp-{index_hash}-{uuid.uuid4().hex[:8]}"
        try:
            _write_index_dir(tmp, fingerprint, index_hash, docs, chunks, vectors)
            if target.exists():
                old = settings.indexes_dir / f".old-{index_hash}-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _switch_active(settings, index_hash)
        return BuildResult(target, index_hash, len(docs), len(chunks), len(todo), len(chunks) - len(todo),
                           time.perf_counter() - t0)


def _switch_active(settings: Settings, index_hash: str) -> None:
    _write_atomic(settings.indexes_dir / "ACTIVE", (index_hash + "\n").encode())
    for d in settings.indexes_dir.iterdir():      # drop superseded indexes (not temporary folders)
        if d.is_dir() and re.fullmatch(r"[0-9a-f]{16}", d.name) and d.name != index_hash:
            shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ loading and search
class KnowledgeIndex:
    """A loaded index: exact inner-product search over normalised vectors, BM25, and their fusion."""

    def __init__(self, path: Path, manifest: dict, faiss_index, chunks: dict[str, list], model_dir: Path | None,
                 settings: Settings | None = None, lexical_index: lexical.LexicalIndex | None = None):
        self.path = path
        self.manifest = manifest
        self.faiss_index = faiss_index
        self.lexical_index = lexical_index
        self.index_hash: str = manifest["index_hash"]
        self.embedding_model_name: str = manifest["embedding_model"]["name"]
        self.embedding_model_sha256: str = manifest["embedding_model"]["sha256"]
        self._chunks = chunks
        self.chunk_sha256: list[str] = chunks["sha256"]
        self._model_dir = model_dir
        self._settings = settings
        self._titles = {d["id"]: d["title"] for d in manifest.get("documents", [])}
        self._codes = {d["id"]: list(d.get("codes") or []) for d in manifest.get("documents", [])}
        self._rows_of_doc: dict[str, list[int]] = {}
        for row, doc_id in enumerate(chunks["doc_id"]):
            self._rows_of_doc.setdefault(doc_id, []).append(row)
        self._vocabulary: frozenset[str] | None = None
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def mode(self) -> str:
        return self.settings.retrieval_mode

    def codes_of(self, doc_id: str) -> list[str]:
        """The SCP statements a document covers (its front matter's codes.scp; none for user files)."""
        return list(self._codes.get(doc_id, []))

    def vocabulary(self) -> frozenset[str]:
        """Lower-case words of the indexed passages and titles (for correcting a query's typos)."""
        if self._vocabulary is None:
            words: set[str] = set()
            for text in list(self._chunks["text"]) + list(self._titles.values()):
                words.update(w.lower() for w in re.findall(r"[A-Za-zÄÖÜäöüß][A-Za-zÄÖÜäöüß-]{2,}", text))
            self._vocabulary = frozenset(words)
        return self._vocabulary

    def passage(self, i: int, similarity: float = 0.0, score: float | None = None) -> Passage:
        c = self._chunks
        return Passage(passage_id=c["chunk_id"][i], doc_id=c["doc_id"][i], section=c["section"][i],
                       text=c["text"][i], source=c["source"][i], similarity=round(float(similarity), 6),
                       title=self._titles.get(c["doc_id"][i], ""),
                       score=round(float(similarity if score is None else score), 6),
                       codes=self.codes_of(c["doc_id"][i]))

    @property
    def settings(self) -> Settings:
        """The settings this index searches with (retrieval mode, embedding model)."""
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    def _query_model_dir(self) -> Path:
        """The embedding model's folder, checked to be the one this index was built with."""
        settings = self.settings
        model_dir = self._model_dir or embedding_model_dir(settings)
        if embedding_model_sha256(model_dir, settings) != self.embedding_model_sha256:
            raise IndexError_(f"index {self.index_hash} was built with another embedding model; {REBUILD_HINT}")
        return model_dir

    def _query_vectors(self, queries: list[str]) -> np.ndarray:
        return embed_queries(self._query_model_dir(), queries, self._settings)

    def warm_up(self) -> None:
        """Load the query encoder now rather than at the first query (pipeline.Resources.start_loading)."""
        prepare_query_encoder(self._query_model_dir(), self._settings)
        self._cosines(np.zeros((0, self.faiss_index.d), dtype=np.float32))    # reads the vectors back once

    # ---------------------------------------------------------------- rankings and fusion
    def _rows(self, doc_ids: list[str] | None) -> np.ndarray:
        if doc_ids is None:
            return np.arange(len(self), dtype=np.int64)
        return np.asarray(sorted(r for d in dict.fromkeys(doc_ids) for r in self._rows_of_doc.get(d, ())),
                          dtype=np.int64)

    def _cosines(self, vecs: np.ndarray) -> np.ndarray:
        """Cosine similarity of each query vector to every passage: the inner products IndexFlatIP
        computes, over the stored vectors read back once (`reconstruct_n`); a full ranking is a
        matrix product, not a top-k search (FAISS's threads cost more than the product here)."""
        if self._matrix is None:
            self._matrix = self.faiss_index.reconstruct_n(0, len(self)) if len(self) else \
                np.zeros((0, self.faiss_index.d), dtype=np.float32)
        return np.asarray(vecs, dtype=np.float32) @ self._matrix.T

    def _rankings(self, texts: list[str], mode: str) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """For each text, its rankings (rows best first: dense, lexical or both) over all rows, and
        every row's cosine similarity to it (zeros when the dense side is not used)."""
        n = len(self)
        cos = np.zeros((len(texts), n), dtype=np.float32)
        ranks: list[list[np.ndarray]] = [[] for _ in texts]
        if mode in ("dense", "hybrid"):
            unique = list(dict.fromkeys(texts))        # each distinct text encoded once
            sims = self._cosines(self._query_vectors(unique))
            cos = sims[[unique.index(t) for t in texts]]
            for i in range(len(texts)):
                ranks[i].append(np.lexsort((np.arange(n), -cos[i])))
        if mode in ("lexical", "hybrid"):
            if self.lexical_index is None:
                raise IndexError_(f"index {self.index_hash} has no lexical part; {REBUILD_HINT}")
            for i, t in enumerate(texts):
                s = self.lexical_index.scores(t)
                order = np.lexsort((np.arange(n), -s))
                ranks[i].append(order[s[order] > 0])          # only passages sharing a term
                if mode == "lexical":
                    cos[i] = s
        return ranks, cos

    def _fused_rows(self, rankings: list[np.ndarray], allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows best first, their fused scores): reciprocal rank fusion of `rankings`, each
        restricted to `allowed` before its ranks are counted; rows in no ranking are left out."""
        n = len(self)
        keep = np.zeros(n, dtype=bool)
        keep[allowed] = True
        fused = np.zeros(n, dtype=np.float64)
        seen = np.zeros(n, dtype=bool)
        for order in rankings:
            kept = order[keep[order]]
            fused[kept] += 1.0 / (RRF_K + np.arange(1, len(kept) + 1))
            seen[kept] = True
        rows = np.flatnonzero(seen)
        return rows, fused[rows]

    def _top(self, rankings: list[np.ndarray], allowed: np.ndarray, k: int, sims: np.ndarray, mode: str,
             first_docs: list[str] | tuple[str, ...] = ()) -> list[Passage]:
        """Top k passages by fused score (ties: higher similarity, then row); the best passage of
        each of `first_docs` first, in fused order."""
        if not len(allowed) or k <= 0:
            return []
        rows, scores = self._fused_rows(rankings, allowed)
        order = np.lexsort((rows, -sims[rows], -scores))
        ranked = [int(r) for r in rows[order]]
        score_of = dict(zip(rows.tolist(), scores.tolist()))
        pinned = []
        for doc in dict.fromkeys(first_docs):
            r = next((r for r in ranked if self._chunks["doc_id"][r] == doc), None)
            if r is not None:
                pinned.append(r)
        pinned.sort(key=ranked.index)
        best = (pinned + [r for r in ranked if r not in pinned])[:k]
        if mode == "dense":
            return [self.passage(r, sims[r]) for r in best]
        if mode == "lexical":
            return [self.passage(r, 0.0, sims[r]) for r in best]
        return [self.passage(r, sims[r], score_of[r]) for r in best]

    def search_many(self, queries: list[str], k: int, doc_ids: list[list[str] | None] | None = None,
                    mode: str | None = None) -> list[list[Passage]]:
        """The k best passages for each query, best first; `doc_ids[i]`, when given, restricts query
        i to the passages of those documents. `mode`: hybrid | dense | lexical (default: settings)."""
        mode = mode or self.mode
        out: list[list[Passage]] = [[] for _ in queries]
        filters = doc_ids or [None] * len(queries)
        todo = [i for i, q in enumerate(queries) if q and q.strip()]
        if not todo or k <= 0 or not len(self):
            return out
        ranks, cos = self._rankings([queries[i] for i in todo], mode)
        for row, qi in enumerate(todo):
            out[qi] = self._top(ranks[row], self._rows(filters[qi]), int(k), cos[row], mode)
        return out

    def search_lines(self, query: str, extra_lines: list[str], k: int, mode: str | None = None,
                     first_docs: list[str] | tuple[str, ...] = ()) -> list[Passage]:
        """One ranking for a query and lines derived from it (`retrieve/understand.py`: statements its values
        support, in the knowledge base's own words): the query's rankings (dense, lexical or both)
        and each extra line's lexical ranking (dense in `dense` mode) fused by reciprocal rank
        fusion; the best passage of each of `first_docs` first. One text is embedded per query."""
        mode = mode or self.mode
        extra = [ln for ln in extra_lines if ln and ln.strip()]
        if not (query and query.strip()) and not extra or k <= 0 or not len(self):
            return []
        ranks, cos = self._rankings([query], mode) if query and query.strip() else ([[]], None)
        rankings = list(ranks[0])
        sims = cos[0] if cos is not None else np.zeros(len(self), dtype=np.float32)
        if extra:
            extra_ranks, extra_cos = self._rankings(extra, "dense" if mode == "dense" else "lexical")
            rankings += [r for per in extra_ranks for r in per]
            if mode != "hybrid":
                sims = np.maximum(sims, extra_cos.max(axis=0))
        return self._top(rankings, self._rows(None), int(k), sims, mode, first_docs)

    def search(self, query: str, k: int, doc_ids: list[str] | None = None, mode: str | None = None) -> list[Passage]:
        return self.search_many([query], k, [doc_ids], mode=mode)[0]


def _read_chunk_columns(path: Path, name: str) -> dict[str, list]:
    if name == CHUNKS_FILE:
        columns = json.loads((path / name).read_text(encoding="utf-8"))["columns"]
        return {c: list(columns[c]) for c in CHUNK_COLUMNS}
    import pyarrow.parquet as pq          # an index of format <= 2 (its vectors are reused)

    table = pq.read_table(path / name, columns=list(CHUNK_COLUMNS))
    return {c: table.column(c).to_pylist() for c in CHUNK_COLUMNS}


def _read_dense(path: Path) -> tuple[dict, object, dict[str, list]]:
    """manifest, FAISS index and chunk columns of an index folder, checked against the manifest's
    sha256 (no format check: `_previous_vectors` reuses older formats' vectors)."""
    import faiss

    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    name = CHUNKS_FILE if CHUNKS_FILE in manifest["files"] else LEGACY_CHUNKS_FILE
    for f in ("index.faiss", name):
        if sha256_file(path / f) != manifest["files"][f]:
            raise ValueError(f"{f} does not match its sha256 in manifest.json")
    index = faiss.read_index(str(path / "index.faiss"))
    chunks = _read_chunk_columns(path, name)
    if not (index.ntotal == len(chunks["chunk_id"]) == manifest["n_chunks"]) or index.d != manifest["dim"]:
        raise ValueError(f"index.faiss, {name} and manifest.json disagree")
    return manifest, index, chunks


def load_index(path: Path, model_dir: Path | None = None, settings: Settings | None = None) -> KnowledgeIndex:
    """Load and verify one index folder; IndexError_ (with a rebuild hint) when anything is off."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"index format {manifest.get('format')} is not {FORMAT_VERSION}")
        for name, digest in manifest["files"].items():
            if sha256_file(path / name) != digest:
                raise ValueError(f"{name} does not match its sha256 in manifest.json")
        if not any(name.startswith("bm25/") for name in manifest["files"]):
            raise ValueError("the lexical (BM25) part is missing")
        manifest, index, chunks = _read_dense(path)
        lex = lexical.load(path / "bm25")
        if lex.n_rows != manifest["n_chunks"]:
            raise ValueError("bm25 and manifest.json disagree")
    except FileNotFoundError as exc:
        raise IndexError_(f"knowledge index incomplete ({Path(exc.filename or '').name or 'file'} missing); "
                          f"{REBUILD_HINT}", path=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - corrupt JSON/FAISS/NumPy all mean the same to the user
        detail = str(exc).splitlines()[0][:160] if isinstance(exc, ValueError) else exc.__class__.__name__
        raise IndexError_(f"knowledge index is corrupt or truncated ({detail}); {REBUILD_HINT}", path=str(path)) from None
    return KnowledgeIndex(path, manifest, index, chunks, model_dir, settings, lex)


def current_index_hash(settings: Settings) -> str:
    """The hash an index of the present knowledge inputs and settings would have."""
    return _hash_of(_fingerprint(settings, scan_inputs(settings)))


def ensure_index(settings: Settings) -> KnowledgeIndex:
    """The active index, rebuilt first (incrementally) when the inputs or settings changed."""
    model_dir = embedding_model_dir(settings)
    wanted = current_index_hash(settings)
    if _active_hash(settings) != wanted or not (settings.indexes_dir / wanted).is_dir():
        build_index(settings)
    return load_index(settings.indexes_dir / wanted, model_dir, settings)


def active_index_info(settings: Settings) -> dict:
    h = _active_hash(settings)
    if h is None:
        raise IndexError_(f"no knowledge index built yet under {settings.indexes_dir}; "
                          "build it with `ragecg knowledge build`")
    idx = load_index(settings.indexes_dir / h)
    return {"index_hash": idx.index_hash, "embedding_model": idx.embedding_model_name,
            "embedding_model_sha256": idx.embedding_model_sha256, "n_docs": idx.manifest["n_docs"],
            "n_chunks": len(idx), "up_to_date": current_index_hash(settings) == h, "path": str(idx.path)}


# ------------------------------------------------------------------ managing user documents
def check_user_document(path: Path, settings: Settings) -> None:
    """What `knowledge add` checks before anything is copied; InputError (exit 3) naming the file:
    a README.md (never indexed: it describes its folder), text that is not UTF-8 or longer than
    `knowledge_max_chars`, and a document in the curated format that fails the curated documents'
    validation (invented SCP code, rule without a cited source, unknown measurement, ...)."""
    if path.name.lower() == "readme.md":
        raise InputError("README.md files are never indexed (a README describes its folder); rename the file "
                         "to add it", path=path.name)
    kind = SUFFIXES[path.suffix.lower()]
    if kind not in ("markdown", "text"):
        return                       # pdf/html: text size and readability are checked by the staged build
    text = read_document_text(path)
    if len(text) > settings.knowledge_max_chars:
        raise InputError(f"holds more than {settings.knowledge_max_chars:,} characters of text (the limit per "
                         "document, RAGECG_KNOWLEDGE_MAX_CHARS); split it or add the relevant part", path=path.name)
    if kind == "markdown" and has_front_matter(text):
        problems = validate_document(parse_markdown_doc(text, path.name))
        if problems:
            first = problems[0].split(": ", 1)[-1]
            raise InputError(f"fails validation ({len(problems)} problem(s); first: {first}); nothing was added "
                             "(`ragecg knowledge validate` checks documents in place)", path=path.name)


def _write_error(exc: OSError, what: str, where: Path) -> IndexError_:
    return IndexError_(f"cannot write {what} ({exc.strerror or type(exc).__name__}); RAGECG_HOME must be a "
                       "writable folder with free space", path=str(where))


def add_documents(settings: Settings, paths: list[Path]) -> list[Path]:
    """Copy md/txt/pdf/html files (or folders of them) into the user knowledge folder and rebuild.

    All or nothing: every file is checked first (`check_user_document`), then the index is built from
    a staging copy of the user folder with the new files; only when that build succeeds are the
    files moved into the user folder (os.replace each). A failed or killed add leaves the previous
    documents and index as they were."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise InputError(f"unsupported document type {p.suffix or '(none)'}; "
                                 f"use {', '.join(sorted(SUFFIXES))}", path=p.name)
            files.append(p)
        elif p.exists():
            raise InputError("is not a regular file (a FIFO, socket or device)", path=p.name)
        else:
            raise InputError("no such file or folder", path=str(p))
    if not files:
        raise InputError("no md, txt, pdf or html files found", path=", ".join(str(p) for p in paths))
    for f in files:
        check_user_document(f, settings)
    dest_dir = settings.user_knowledge
    taken = {r["id"]: r for r in list_documents(settings)}
    plan: list[tuple[Path, str]] = []
    for f in files:
        name = slug(f.stem) + f.suffix.lower()
        doc_id = slug(f.stem)
        clash = taken.get(doc_id)
        if clash and not (clash["kind"] == "user" and Path(clash["path"]).resolve() == (dest_dir / name).resolve()):
            raise InputError(f"a knowledge document with id {doc_id!r} already exists; rename the file", path=f.name)
        taken[doc_id] = {"kind": "user", "path": str(dest_dir / name)}
        plan.append((f, name))
    staging = dest_dir.parent / f".{dest_dir.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        _sweep_stale_staging(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dest_dir, staging)
        for f, name in plan:
            shutil.copyfile(f, staging / name)
        build_index(settings.model_copy(update={"user_knowledge_dir": staging}))
        for _, name in plan:
            os.replace(staging / name, dest_dir / name)
    except OSError as exc:
        raise _write_error(exc, "the user knowledge folder or the index", dest_dir) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest_dir / name for _, name in plan]


def _sweep_stale_staging(dest_dir: Path, older_than_s: float = 3600.0) -> None:
    """Staging folders left by a killed `knowledge add` (never read; removed after an hour)."""
    if not dest_dir.parent.is_dir():
        return
    for d in dest_dir.parent.glob(f".{dest_dir.name}.staging-*"):
        with contextlib.suppress(OSError):
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)


def remove_document(settings: Settings, doc_id: str) -> Path:
    """Delete a user-added document (curated ones cannot be removed here), then rebuild."""
    rows = {r["id"]: r for r in list_documents(settings)}
    row = rows.get(doc_id)
    if row is None:
        raise InputError(f"no knowledge document with id {doc_id!r} (see `ragecg knowledge list`)")
    if row["kind"] != "user":
        raise InputError(f"{doc_id!r} is a curated document; only user-added documents can be removed")
    path = Path(row["path"])
    try:
        path.unlink()
    except OSError as exc:
        raise _write_error(exc, "the user knowledge folder", path.parent) from None
    build_index(settings)
    return path


def list_documents(settings: Settings) -> list[dict]:
    """Every knowledge document: id, title, codes, path, kind (curated/user), n_chunks.
    Read from the index manifest when it is up to date, else from the files (no embedding)."""
    inputs = scan_inputs(settings)
    h = _active_hash(settings)
    docs = None
    if h is not None and h == _hash_of(_fingerprint(settings, inputs)):
        with contextlib.suppress(OSError, ValueError, KeyError):
            docs = json.loads((settings.indexes_dir / h / "manifest.json").read_text(encoding="utf-8"))["documents"]
    if docs is None:
        docs, _ = documents_and_chunks(inputs, settings)
    by_key = {i.key: i for i in inputs}
    return [{"id": d["id"], "title": d["title"], "codes": d["codes"], "kind": d["kind"],
             "path": str(by_key[f"{d['kind']}:{d['file']}"].path), "n_chunks": d["n_chunks"]}
            for d in docs if f"{d['kind']}:{d['file']}" in by_key]
