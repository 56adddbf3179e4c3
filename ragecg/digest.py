"""File digests: sha256 of model and index files, cached so that a new process need not re-hash
a 90 MB model file before every command."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .settings import Settings

_SHA_MEMO: dict[tuple[str, int, int], str] = {}
_SHA_LOCK = threading.Lock()


def _sha_cache_file(settings: Settings | None) -> Path | None:
    return None if settings is None else settings.caches / "sha256.json"


def file_sha256(path: Path, settings: Settings | None = None) -> str:
    """sha256 of a file, cached by (resolved path, size, mtime) in memory and in HOME/cache.

    The cache guards against re-hashing, not against tampering that preserves size and mtime."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _SHA_LOCK:
        if key in _SHA_MEMO:
            return _SHA_MEMO[key]
    cache_file = _sha_cache_file(settings)
    disk: dict[str, str] = {}
    disk_key = f"{key[0]}|{key[1]}|{key[2]}"
    if cache_file is not None and cache_file.is_file():
        try:
            disk = json.loads(cache_file.read_text(encoding="utf-8"))
            if isinstance(disk.get(disk_key), str):
                with _SHA_LOCK:
                    _SHA_MEMO[key] = disk[disk_key]
                return disk[disk_key]
        except (OSError, ValueError):
            disk = {}
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _SHA_LOCK:
        _SHA_MEMO[key] = digest
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            disk = {k: v for k, v in disk.items() if isinstance(v, str)} if isinstance(disk, dict) else {}
            disk[disk_key] = digest
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(disk, indent=0), encoding="utf-8")
            os.replace(tmp, cache_file)
        except OSError:
            pass  # a read-only home only costs a re-hash next time
    return digest
