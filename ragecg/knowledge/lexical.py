"""Lexical (BM25) side of the knowledge index, with `bm25s`: the tokenizer, build, save and load.

Tokens: lower-case words and letter-digit terms ("v1", "1avb", "qtc", "rsr'"), English stop words
removed (bm25s's list), Snowball English stems for longer alphabetic words (so "inverted",
"inversion" and "inversions" meet), pure numbers dropped (a measured value is not a word of a
document; query understanding turns values into statements instead). The vocabulary is sorted
before indexing so that the same chunks give the same bytes. Saved with `BM25.save` (NumPy arrays
without pickle, JSON vocabulary and parameters) and read back with `allow_pickle=False`.
"""
from __future__ import annotations

import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

BM25_K1 = 1.5                 # Robertson & Zaragoza 2009, common defaults (Lucene's)
BM25_B = 0.75
BM25_METHOD = "lucene"
TOKENIZER = "words-v2+snowball-english+bm25s-stopwords-en"
KEEP_SHORT = {"p", "q", "r", "s", "t", "u"}      # wave names are words here, not stop words
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'+|′+)?")


def _bm25s():
    import bm25s
    return bm25s


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN
    return frozenset(STOPWORDS_EN) - KEEP_SHORT


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer
    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word) if len(word) > 3 and word.isalpha() else word


def tokenize(text: str) -> list[str]:
    """BM25 tokens of one text (see the module docstring)."""
    stop = _stopwords()
    out = []
    for tok in _TOKEN_RE.findall(text.lower().replace("′", "'")):
        if tok.isdigit() or tok in stop or (len(tok) == 1 and tok not in KEEP_SHORT):
            continue
        out.append(_stem(tok))
    return out


def settings_fingerprint() -> dict:
    import bm25s
    return {"library": "bm25s", "version": bm25s.__version__, "k1": BM25_K1, "b": BM25_B,
            "method": BM25_METHOD, "tokenizer": TOKENIZER}


def build(texts: list[str], out_dir: Path) -> list[str]:
    """Index `texts` (row i = chunk i) and save under `out_dir`; the saved file names."""
    bm25s = _bm25s()
    tokens = [tokenize(t) for t in texts]
    # "" (id 0) is bm25s's empty token: a text with no indexable word still has a row
    vocab = {tok: i for i, tok in enumerate([""] + sorted({t for ts in tokens for t in ts}))}
    ids = [[vocab[t] for t in ts] for ts in tokens]
    retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B, method=BM25_METHOD)
    with warnings.catch_warnings():        # an empty corpus: NumPy warns about the mean of no lengths
        warnings.simplefilter("ignore", RuntimeWarning)
        retriever.index((ids, vocab), show_progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    retriever.save(str(out_dir), allow_pickle=False)
    return sorted(p.name for p in out_dir.iterdir() if p.is_file())


class LexicalIndex:
    """A loaded BM25 index: `scores(text)` over every chunk row."""

    def __init__(self, retriever, n_rows: int):
        self._retriever = retriever
        self.n_rows = n_rows

    def scores(self, text: str) -> np.ndarray:
        toks = [t for t in tokenize(text) if t and t in self._retriever.vocab_dict]
        if not toks:
            return np.zeros(self.n_rows, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(toks), dtype=np.float32)


def load(path: Path) -> LexicalIndex:
    """Read a saved index (arrays with allow_pickle=False); errors propagate to `index.load_index`."""
    bm25s = _bm25s()
    retriever = bm25s.BM25.load(str(path), mmap=False, allow_pickle=False, load_corpus=False, show_progress=False)
    n = int(len(retriever.scores["indptr"]) - 1) if retriever.scores.get("num_docs") is None \
        else int(retriever.scores["num_docs"])
    return LexicalIndex(retriever, n)
