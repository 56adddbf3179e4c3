"""Knowledge index: knowledge files -> chunks -> sentence-transformers vectors -> exact FAISS search.

Layout under ``settings.indexes_dir``::

    ACTIVE                      one line: the hash of the index in use (switched with os.replace)
    <hash>/index.faiss          faiss.IndexFlatIP over L2-normalised vectors (inner product = cosine)
    <hash>/chunks.parquet       chunk_id, doc_id, n, section, text, source, sha256 (row i = vector i)
    <hash>/manifest.json        input file hashes, embedding model name + sha256, splitter settings,
                                package version, documents, sha256 of the two files above

``<hash>`` is the sha256 of the inputs and settings (``_fingerprint``), so the same inputs give the
same directory and the same bytes (no timestamps anywhere). A build writes a temporary directory and
only then switches ACTIVE, so a failed build leaves the previous index working. Chunks whose sha256
is unchanged reuse the vectors stored in the previous index (read back with ``reconstruct_n``); only
new or changed chunks are embedded. Nothing here pickles: vectors live in the FAISS file, metadata
in Parquet and JSON, and the embedding model must ship ``model.safetensors``.
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

from .chunking import (MARKDOWN_HEADERS, SUFFIXES, Chunk, KnowledgeInput, documents_and_chunks,
                       scan_inputs, sha256_file, slug)
from .documents import has_front_matter, parse_markdown_doc, read_document_text, validate_document
from .embed import (embed_queries, embed_texts, embedding_model_dir, embedding_model_name, embedding_model_sha256,
                    prepare_query_encoder)

FORMAT_VERSION = 1
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp.mkdir(parents=True)
    index = faiss.IndexFlatIP(int(vectors.shape[1]))
    if len(vectors):
        index.add(vectors)
    faiss.write_index(index, str(tmp / "index.faiss"))
    table = pa.table({
        "chunk_id": pa.array([c.chunk_id for c in chunks], pa.string()),
        "doc_id": pa.array([c.doc_id for c in chunks], pa.string()),
        "n": pa.array([c.n for c in chunks], pa.int32()),
        "section": pa.array([c.section for c in chunks], pa.string()),
        "text": pa.array([c.text for c in chunks], pa.string()),
        "source": pa.array([c.source for c in chunks], pa.string()),
        "sha256": pa.array([c.sha256 for c in chunks], pa.string()),
    })
    pq.write_table(table, tmp / "chunks.parquet", compression="zstd")
    manifest = dict(fingerprint, index_hash=index_hash, dim=int(vectors.shape[1]), n_docs=len(docs),
                    n_chunks=len(chunks), documents=docs,
                    files={name: sha256_file(tmp / name) for name in ("index.faiss", "chunks.parquet")})
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _previous_vectors(settings: Settings, model_sha: str) -> dict[str, np.ndarray]:
    """chunk sha256 -> stored vector of the active index (empty when unusable: then re-embed)."""
    h = _active_hash(settings)
    if h is None:
        return {}
    try:
        old = load_index(settings.indexes_dir / h)
    except IndexError_:
        return {}
    if old.manifest["embedding_model"]["sha256"] != model_sha or old.faiss_index.ntotal == 0:
        return {}
    vecs = old.faiss_index.reconstruct_n(0, old.faiss_index.ntotal)
    return {sha: vecs[i] for i, sha in enumerate(old.chunk_sha256)}


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
    """A loaded index: exact inner-product search over normalised vectors."""

    def __init__(self, path: Path, manifest: dict, faiss_index, chunks: dict[str, list], model_dir: Path | None,
                 settings: Settings | None = None):
        self.path = path
        self.manifest = manifest
        self.faiss_index = faiss_index
        self.index_hash: str = manifest["index_hash"]
        self.embedding_model_name: str = manifest["embedding_model"]["name"]
        self.embedding_model_sha256: str = manifest["embedding_model"]["sha256"]
        self._chunks = chunks
        self.chunk_sha256: list[str] = chunks["sha256"]
        self._model_dir = model_dir
        self._settings = settings
        self._titles = {d["id"]: d["title"] for d in manifest.get("documents", [])}
        self._rows_of_doc: dict[str, list[int]] = {}
        for row, doc_id in enumerate(chunks["doc_id"]):
            self._rows_of_doc.setdefault(doc_id, []).append(row)

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def passage(self, i: int, similarity: float = 0.0) -> Passage:
        c = self._chunks
        return Passage(passage_id=c["chunk_id"][i], doc_id=c["doc_id"][i], section=c["section"][i],
                       text=c["text"][i], source=c["source"][i], similarity=round(float(similarity), 6),
                       title=self._titles.get(c["doc_id"][i], ""))

    def _query_model_dir(self) -> Path:
        """The embedding model's folder, checked to be the one this index was built with."""
        if self._settings is None:
            self._settings = get_settings()
        model_dir = self._model_dir or embedding_model_dir(self._settings)
        if embedding_model_sha256(model_dir, self._settings) != self.embedding_model_sha256:
            raise IndexError_(f"index {self.index_hash} was built with another embedding model; {REBUILD_HINT}")
        return model_dir

    def _query_vectors(self, queries: list[str]) -> np.ndarray:
        return embed_queries(self._query_model_dir(), queries, self._settings)

    def warm_up(self) -> None:
        """Load the query encoder now rather than at the first query (pipeline.Resources.start_loading)."""
        prepare_query_encoder(self._query_model_dir(), self._settings)

    def search_many(self, queries: list[str], k: int,
                    doc_ids: list[list[str] | None] | None = None) -> list[list[Passage]]:
        """The k most similar passages for each query (exact search), most similar first;
        `doc_ids[i]`, when given, restricts query i to the passages of those documents."""
        out: list[list[Passage]] = [[] for _ in queries]
        filters = doc_ids or [None] * len(queries)
        todo = [i for i, q in enumerate(queries) if q and q.strip()]
        k = min(int(k), len(self))
        if not todo or k <= 0:
            return out
        unique = list(dict.fromkeys(queries[i] for i in todo))       # each distinct text encoded once
        encoded = self._query_vectors(unique)
        vecs = encoded[[unique.index(queries[i]) for i in todo]]
        free = [row for row, qi in enumerate(todo) if filters[qi] is None]
        if free:
            sims, ids = self.faiss_index.search(vecs[free], k)
            for r, row in enumerate(free):
                out[todo[row]] = [self.passage(int(j), sv) for sv, j in zip(sims[r], ids[r]) if j >= 0]
        for row, qi in enumerate(todo):
            if filters[qi] is not None:
                out[qi] = self._search_within(vecs[row:row + 1], k, filters[qi])
        return out

    def _search_within(self, vec: np.ndarray, k: int, doc_ids: list[str]) -> list[Passage]:
        import faiss

        rows = [r for d in doc_ids for r in self._rows_of_doc.get(d, ())]
        if not rows:
            return []
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64))
        sims, ids = self.faiss_index.search(vec, min(k, len(rows)), params=params)
        return [self.passage(int(j), sv) for sv, j in zip(sims[0], ids[0]) if j >= 0]

    def search(self, query: str, k: int, doc_ids: list[str] | None = None) -> list[Passage]:
        return self.search_many([query], k, [doc_ids])[0]


def load_index(path: Path, model_dir: Path | None = None, settings: Settings | None = None) -> KnowledgeIndex:
    """Load and verify one index folder; IndexError_ (with a rebuild hint) when anything is off."""
    import faiss
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        for name, digest in manifest["files"].items():
            if sha256_file(path / name) != digest:
                raise ValueError(f"{name} does not match its sha256 in manifest.json")
        index = faiss.read_index(str(path / "index.faiss"))
        table = pq.read_table(path / "chunks.parquet", columns=list(CHUNK_COLUMNS))
        chunks = {name: table.column(name).to_pylist() for name in CHUNK_COLUMNS}
        if not (index.ntotal == table.num_rows == manifest["n_chunks"]) or index.d != manifest["dim"]:
            raise ValueError("index.faiss, chunks.parquet and manifest.json disagree")
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"index format {manifest.get('format')} is not {FORMAT_VERSION}")
    except FileNotFoundError as exc:
        raise IndexError_(f"knowledge index incomplete ({Path(exc.filename or '').name or 'file'} missing); "
                          f"{REBUILD_HINT}", path=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - corrupt JSON/FAISS/Parquet all mean the same to the user
        detail = str(exc).splitlines()[0][:160] if isinstance(exc, ValueError) else exc.__class__.__name__
        raise IndexError_(f"knowledge index is corrupt or truncated ({detail}); {REBUILD_HINT}", path=str(path)) from None
    return KnowledgeIndex(path, manifest, index, chunks, model_dir, settings)


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
