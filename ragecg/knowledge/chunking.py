"""Knowledge files -> chunks (part of the index stage): which files are inputs, how each is loaded
(curated Markdown parsed with its front matter; user md/txt/pdf/html with langchain's loaders) and
split (langchain's Markdown header splitter, then the recursive splitter for long sections), and what
text of each chunk is embedded. `index.py` hashes, embeds and stores what this returns.

A curated document with criteria gets one more chunk, "Diagnostic criteria": its front-matter rules
in words with their source ids, so a query made of measured findings can reach it.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ragecg.errors import InputError
from ragecg.settings import Settings
from ragecg.values import UNITS, KnowledgeDoc, describe_measure

from .documents import has_front_matter, parse_markdown_doc, read_document_text

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text",
            ".pdf": "pdf", ".html": "html", ".htm": "html"}
MARKDOWN_HEADERS = [("#", "h1"), ("##", "h2")]

@dataclass
class KnowledgeInput:
    path: Path
    kind: str            # curated | user
    rel: str             # path relative to its knowledge folder (posix)
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.rel}"


@dataclass
class Chunk:
    doc_id: str
    n: int
    section: str
    text: str
    source: str
    embed_text: str                     # what is embedded: title and section give the text context
    sha256: str = field(init=False)

    def __post_init__(self):
        self.sha256 = hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.n}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ inputs -> chunks
def scan_inputs(settings: Settings) -> list[KnowledgeInput]:
    user_dir = Path(settings.user_knowledge).resolve()
    out: list[KnowledgeInput] = []
    for d in settings.all_knowledge_dirs():
        d = Path(d)
        if not d.is_dir():
            continue
        kind = "user" if d.resolve() == user_dir else "curated"
        for p in sorted(d.rglob("*")):
            rel = p.relative_to(d).as_posix()
            if (not p.is_file() or p.suffix.lower() not in SUFFIXES or p.name.lower() == "readme.md"
                    or any(part.startswith(".") for part in p.relative_to(d).parts)):
                continue
            if kind == "curated" and SUFFIXES[p.suffix.lower()] != "markdown":
                continue        # curated knowledge is Markdown with front matter only
            out.append(KnowledgeInput(path=p, kind=kind, rel=rel, sha256=sha256_file(p)))
    return out


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return s or "document"


def _splitter(settings: Settings):
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    return RecursiveCharacterTextSplitter(chunk_size=settings.chunk_size_chars,
                                          chunk_overlap=settings.chunk_overlap_chars)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\x0c", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _markdown_sections(body: str, settings: Settings, default_section: str) -> list[tuple[str, str]]:
    """(section title, text) pieces: split on # / ## headings, long sections split further."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter
    pieces = MarkdownHeaderTextSplitter(MARKDOWN_HEADERS, strip_headers=True).split_text(body)
    splitter = _splitter(settings)
    out = []
    for piece in pieces:
        section = piece.metadata.get("h2") or piece.metadata.get("h1") or default_section
        for text in splitter.split_text(_tidy(piece.page_content)):
            if text.strip():
                out.append((section, text.strip()))
    return out


def _criteria_text(doc: KnowledgeDoc) -> str:
    """The front matter's criteria in words (indexed as one more passage of the document)."""
    lines = []
    for rule in doc.criteria:
        conds = []
        for c in rule.conditions:
            where = f" in {'/'.join(c.leads)}" + (f" (at least {c.min_leads} leads)" if c.min_leads > 1 else "") \
                if c.leads else ""
            sex = {"M": " (men)", "F": " (women)"}.get(c.sex or "", "")
            conds.append(f"{describe_measure(c.measure)}{where} {c.op} {_threshold(c.measure, c.value)}{sex} "
                         f"[{c.source}]")
        joiner = "; and " if rule.match == "all" else "; or "
        lines.append(f"{rule.code}: " + joiner.join(conds))
    return "\n".join(lines)


def _threshold(measure: str, value: float | bool) -> str:
    if isinstance(value, bool):
        return "present" if value else "absent"
    unit = next((u for s, u in UNITS.items() if measure.endswith(s)), "")
    return f"{value:g} {unit}".rstrip()


def _curated_chunks(doc: KnowledgeDoc, source: str, settings: Settings) -> list[Chunk]:
    pieces = _markdown_sections(doc.body, settings, default_section=doc.title)
    if doc.criteria:
        pieces.append(("Diagnostic criteria", _criteria_text(doc)))
    return [Chunk(doc.id, i, section, text, source, f"{doc.title}. {section}.\n{text}")
            for i, (section, text) in enumerate(pieces, start=1)]


def _first_title(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.lstrip("#").strip()[:120] or None
    return None


def _too_long(path: Path, max_chars: int) -> InputError:
    return InputError(f"holds more than {max_chars:,} characters of text (the limit per document, "
                      "RAGECG_KNOWLEDGE_MAX_CHARS); split it or add the relevant part", path=path.name)


def _load_langchain(path: Path, kind: str, max_chars: int) -> list:
    """Documents of a user file through langchain's loaders (imported only when building), page by
    page; InputError as soon as the text passes `max_chars` (a small PDF can hold 50 MB of text)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader, TextLoader
    try:
        if kind == "pdf":
            loader = PyPDFLoader(str(path), mode="page")
        elif kind == "html":
            loader = BSHTMLLoader(str(path), open_encoding="utf-8", get_text_separator="\n",
                                  bs_kwargs={"features": "html.parser"})   # stdlib parser, no lxml
        else:
            loader = TextLoader(str(path), encoding="utf-8")
        pages, total = [], 0
        for page in loader.lazy_load():
            total += len(page.page_content)
            if total > max_chars:
                raise _too_long(path, max_chars)
            pages.append(page)
        return pages
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader failure means an unreadable file
        raise InputError(f"cannot read this {kind} document ({exc.__class__.__name__})", path=path.name) from None


def _user_chunks(inp: KnowledgeInput, settings: Settings) -> tuple[dict, list[Chunk]]:
    kind = SUFFIXES[inp.path.suffix.lower()]
    if kind in ("markdown", "text"):
        text = read_document_text(inp.path)
        if len(text) > settings.knowledge_max_chars:
            raise _too_long(inp.path, settings.knowledge_max_chars)
        if kind == "markdown" and has_front_matter(text):   # a document in the curated format, added by the user
            doc = parse_markdown_doc(text, inp.path.name)
            return _doc_info(doc, inp, _cites(doc)), _curated_chunks(doc, _cites(doc), settings)
    if kind == "pdf":
        check_pdf_text_size(inp.path, settings.knowledge_max_chars)
    pages = _load_langchain(inp.path, kind, settings.knowledge_max_chars)
    doc_id = slug(inp.path.stem)
    meta_title = (pages[0].metadata.get("title") if pages else None) or None
    title = (str(meta_title).strip() if meta_title else None) or \
        next((t for p in pages if (t := _first_title(p.page_content))), None) or inp.path.stem
    source = f"{inp.path.name} (user document)"
    pieces: list[tuple[str, str]] = []
    for page in pages:
        if kind == "markdown":
            pieces += _markdown_sections(page.page_content, settings, default_section=title)
            continue
        section = f"page {int(page.metadata.get('page', 0)) + 1}" if kind == "pdf" else title
        pieces += [(section, t.strip()) for t in _splitter(settings).split_text(_tidy(page.page_content)) if t.strip()]
    chunks = [Chunk(doc_id, i, section, text, source, f"{title}. {section}.\n{text}")
              for i, (section, text) in enumerate(pieces, start=1)]
    info = {"id": doc_id, "title": title, "codes": [], "kind": "user", "file": inp.rel,
            "sha256": inp.sha256, "source": source}
    return info, chunks


def check_pdf_text_size(path: Path, max_chars: int) -> None:
    """Refuse a PDF whose page content streams, decompressed, exceed what `max_chars` of text could
    need (8 bytes of drawing operators per character), before any text is extracted: extraction is
    slow (minutes for 50 MB), decompression is not."""
    from pypdf import PdfReader

    limit = 8 * max_chars
    try:
        total = 0
        for page in PdfReader(str(path)).pages:
            contents = page.get_contents()
            total += len(contents.get_data()) if contents is not None else 0
            if total > limit:
                raise _too_long(path, max_chars)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types for damaged files
        raise InputError(f"cannot read this pdf document ({exc.__class__.__name__})", path=path.name) from None


def _cites(doc: KnowledgeDoc) -> str:
    return "; ".join(s.cite for s in doc.sources)


def _doc_info(doc: KnowledgeDoc, inp: KnowledgeInput, source: str) -> dict:
    return {"id": doc.id, "title": doc.title, "codes": list(doc.codes.scp), "kind": inp.kind,
            "file": inp.rel, "sha256": inp.sha256, "source": source}


def documents_and_chunks(inputs: list[KnowledgeInput], settings: Settings) -> tuple[list[dict], list[Chunk]]:
    docs: list[dict] = []
    chunks: list[Chunk] = []
    seen: dict[str, str] = {}
    for inp in inputs:
        if inp.kind == "curated":
            doc = parse_markdown_doc(read_document_text(inp.path), str(inp.path))
            info, cs = _doc_info(doc, inp, _cites(doc)), _curated_chunks(doc, _cites(doc), settings)
        else:
            info, cs = _user_chunks(inp, settings)
        if info["id"] in seen:
            raise InputError(f"duplicate knowledge id {info['id']!r} (also {seen[info['id']]}); rename one file",
                             path=inp.path.name)
        seen[info["id"]] = inp.key
        info["n_chunks"] = len(cs)
        docs.append(info)
        chunks.extend(cs)
    order = sorted(range(len(docs)), key=lambda i: docs[i]["id"])
    docs = [docs[i] for i in order]
    chunks.sort(key=lambda c: (c.doc_id, c.n))
    return docs, chunks
