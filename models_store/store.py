"""The model store: every file the platform keeps (images, adapters, versions, job files, exports) by key.

Keys are ``/``-separated relative paths (``images/ab/cd/<sha256>``, ``adapters/<task>/v1/adapter/...``,
``jobs/<job id>/spec.json``). Two backends behind one interface:

- ``LocalFolderStore`` (the default, ``DATA_DIR/store``): a folder; a key is a file under it, written
  atomically (temporary file + rename), and ``materialise`` hands out the file itself, so nothing is copied.
- ``ObjectStore``: an S3-compatible bucket (``s3://bucket/prefix``) through obstore, with its endpoint,
  region and credentials from the usual AWS variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
  ``AWS_ACCESS_KEY_ID``, ...); ``http://`` endpoints (MinIO, a test stand-in) are allowed when the endpoint
  says so. Several gateways and training workers share it.

Child processes and vLLM read local files, so ``materialise`` / ``materialise_dir`` give a local path for a
key or a folder of keys: for the object store, a copy in a local cache that mirrors the store's layout
(``CACHE/<key>``), so relative paths between keys (a job's spec naming ``../../images/...``) hold in the
cache as they do in the store. ``push_dir`` writes a local folder's files back under a prefix (a no-op when
the folder already is the store's own). Cached copies are reused when their size matches: the platform's
keys are written once (content-addressed images, numbered versions, step-numbered checkpoints).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

CHUNK = 8 * 1024 * 1024


class StoreError(ValueError):
    """A store URL or key that cannot be used; the message says why."""


def check_key(key: str) -> str:
    """A relative, normalised key (no ``..``, no leading ``/``); raises ``StoreError`` otherwise."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("..", ".", "") for part in key.split("/")):
        raise StoreError(f"not a store key: {key!r}")
    return key


def join(*parts: str) -> str:
    """Keys joined with ``/`` (empty parts dropped)."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class Store(ABC):
    """Files by key. Methods block (disk or network): call them from a thread in async code."""

    url: str

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The bytes at ``key``; ``FileNotFoundError`` when there are none."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically (readers see the old or the new bytes, never a part)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove one key; True when it was there."""

    @abstractmethod
    def sizes(self, prefix: str) -> dict[str, int]:
        """Every key under ``prefix/`` (recursively) with its size in bytes."""

    @abstractmethod
    def upload(self, key: str, path: Path) -> None:
        """Store a local file's bytes at ``key``."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """Where ``key`` is (local folder) or is cached (object store) on this machine."""

    def keys(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix/``; how many there were."""
        keys = self.keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def materialise(self, key: str) -> Path:
        """A local file with ``key``'s bytes (the file itself in a local folder, else a cached copy)."""
        return self.local_path(check_key(key))

    def materialise_dir(self, prefix: str) -> Path:
        """A local folder with every key under ``prefix/`` (see ``materialise``)."""
        for key in self.keys(prefix):
            self.materialise(key)
        return self.local_path(check_key(prefix))

    def push_dir(self, local: Path, prefix: str, skip: frozenset[str] = frozenset()) -> int:
        """Store every file under the local folder ``local`` at ``prefix/<relative path>``, except files
        whose relative path starts with a name in ``skip``; how many were written."""
        if local.resolve() == self.local_path(check_key(prefix)).resolve() and self.is_local:
            return 0
        count = 0
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            if relative.split("/")[0] in skip or path.name.startswith(".tmp"):
                continue
            self.upload(join(prefix, relative), path)
            count += 1
        return count

    def copy_prefix(self, source: str, target: str, skip: frozenset[str] = frozenset()) -> int:
        """Copy every key under ``source/`` to the same relative key under ``target/``, except those whose
        relative key starts with a name in ``skip``; how many were copied."""
        count = 0
        for key in self.keys(source):
            relative = key.removeprefix(source.rstrip("/") + "/")
            if relative.split("/")[0] not in skip:
                self.write(join(target, relative), self.read(key))
                count += 1
        return count

    @property
    def is_local(self) -> bool:
        """True when keys are plain files on this machine (nothing to copy in or out)."""
        return False


class LocalFolderStore(Store):
    """Keys as files under ``root``; ``materialise`` returns the file itself."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    @property
    def is_local(self) -> bool:
        return True

    def local_path(self, key: str) -> Path:
        return self.root / check_key(key)

    def read(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        write_atomic(self.local_path(key), data)

    def upload(self, key: str, path: Path) -> None:
        target = self.local_path(key)
        if target.resolve() != path.resolve():
            write_atomic(target, path.read_bytes())

    def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.local_path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def sizes(self, prefix: str) -> dict[str, int]:
        base = self.local_path(prefix)
        if not base.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp")
        }

    def delete_prefix(self, prefix: str) -> int:
        count = len(self.sizes(prefix))
        shutil.rmtree(self.local_path(prefix), ignore_errors=True)
        return count


class ObjectStore(Store):
    """An obstore bucket (S3-compatible), with a local cache that mirrors its keys."""

    def __init__(self, url: str, cache_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
        """``env``: AWS settings to use instead of the process environment's (tests, several stores)."""
        from obstore.store import from_url

        self.url = url
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        config = _config(env) if env is not None else None
        options = _client_options(env if env is not None else os.environ)
        self._store = from_url(url, config=config, client_options=options)  # type: ignore[call-overload]

    def local_path(self, key: str) -> Path:
        return self.cache_dir / check_key(key)

    def read(self, key: str) -> bytes:
        import obstore

        return bytes(obstore.get(self._store, check_key(key)).bytes())

    def write(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self._store, check_key(key), data)

    def upload(self, key: str, path: Path) -> None:
        import obstore

        obstore.put(self._store, check_key(key), path)

    def exists(self, key: str) -> bool:
        import obstore

        try:
            obstore.head(self._store, check_key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> bool:
        import obstore

        existed = self.exists(key)
        obstore.delete(self._store, check_key(key))
        return existed

    def sizes(self, prefix: str) -> dict[str, int]:
        import obstore

        return {
            meta["path"]: int(meta["size"])
            for chunk in obstore.list(self._store, check_key(prefix).rstrip("/") + "/")
            for meta in chunk
        }

    def materialise(self, key: str) -> Path:
        path = self.local_path(key)
        if not path.is_file():
            self._download(key, path)
        return path

    def materialise_dir(self, prefix: str) -> Path:
        for key, size in self.sizes(prefix).items():
            path = self.local_path(key)
            if not path.is_file() or path.stat().st_size != size:
                self._download(key, path)
        return self.local_path(check_key(prefix))

    def _download(self, key: str, path: Path) -> None:
        import obstore

        result = obstore.get(self._store, check_key(key))
        write_atomic(path, _chunks(result))


def _chunks(result: object) -> Iterator[bytes]:
    for chunk in result.stream(min_chunk_size=CHUNK):  # type: ignore[attr-defined]
        yield bytes(chunk)


_CONFIG_KEYS = {
    "AWS_ENDPOINT_URL": "endpoint", "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key", "AWS_REGION": "region", "AWS_SESSION_TOKEN": "token",
}  # fmt: skip


def _config(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[key] for key, name in _CONFIG_KEYS.items() if env.get(key)}


def _client_options(env: Mapping[str, str]) -> dict[str, object]:
    """``allow_http`` when the configured endpoint is plain HTTP (MinIO on a LAN, a local test server)."""
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT") or ""
    return {"allow_http": True} if endpoint.startswith("http://") else {}


def write_atomic(path: Path, data: bytes | Iterator[bytes]) -> None:
    """Write to a temporary file in the same folder and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_store(url: str | Path, cache_dir: Path) -> Store:
    """The store a URL names: a folder (plain path or ``file://``) or a bucket (``s3://bucket/prefix``)."""
    text = str(url)
    if text.startswith("file://"):
        return LocalFolderStore(Path(text.removeprefix("file://")))
    if "://" not in text:
        return LocalFolderStore(Path(text))
    scheme = text.split("://", 1)[0]
    if scheme not in ("s3", "s3a", "gs", "az", "abfs"):
        raise StoreError(f"store URL {text!r}: use a folder, file://, s3://bucket/prefix (or gs://, az://)")
    return ObjectStore(text, cache_dir)
