"""The model store on both backends: a local folder, and an S3 bucket on a local moto server (127.0.0.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models_store.image_store import ImageStore
from models_store.store import LocalFolderStore, ObjectStore, Store, StoreError, open_store
from tests.support.s3 import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.make_bucket("unit-store")
        yield server


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "folder":
        return LocalFolderStore(tmp_path / "store")
    server: S3Server = request.getfixturevalue("s3")
    prefix = tmp_path.name  # a prefix per test: the bucket is shared by the module
    return ObjectStore(f"s3://unit-store/{prefix}", tmp_path / "cache", env=server.env)


def test_write_read_list_delete(store: Store) -> None:
    store.write("jobs/j1/spec.json", b"{}")
    store.write("jobs/j1/output/adapter/a.bin", b"x" * 1000)
    store.write("jobs/j2/spec.json", b"[]")
    assert store.read("jobs/j1/spec.json") == b"{}" and store.exists("jobs/j2/spec.json")
    assert store.sizes("jobs/j1") == {"jobs/j1/spec.json": 2, "jobs/j1/output/adapter/a.bin": 1000}
    assert store.delete("jobs/j2/spec.json") and not store.delete("jobs/j2/spec.json")
    with pytest.raises(FileNotFoundError):
        store.read("jobs/j2/spec.json")
    assert store.delete_prefix("jobs/j1") == 2 and store.keys("jobs") == []


def test_materialise_mirrors_the_layout_and_push_dir_writes_back(store: Store, tmp_path: Path) -> None:
    store.write("images/ab/cd/abcd", b"image")
    store.write("jobs/j1/spec.json", b'{"images": ["../../images/ab/cd/abcd"]}')
    spec_dir = store.materialise_dir("jobs/j1")
    assert (spec_dir / "../../images/ab/cd/abcd").exists() is (store.is_local)
    assert store.materialise("images/ab/cd/abcd").read_bytes() == b"image"
    assert (spec_dir / "../../images/ab/cd/abcd").read_bytes() == b"image"  # relative keys hold locally
    out = tmp_path / "work" / "output"
    (out / "checkpoints" / "step-1").mkdir(parents=True)
    (out / "checkpoints" / "step-1" / "state.pt").write_bytes(b"state")
    (out / "adapter").mkdir()
    (out / "adapter" / "adapter_config.json").write_text("{}")
    assert store.push_dir(out, "jobs/j1/output", skip=frozenset({"checkpoints"})) == 1
    assert store.keys("jobs/j1/output") == ["jobs/j1/output/adapter/adapter_config.json"]
    assert store.copy_prefix("jobs/j1/output", "adapters/t/v1") == 1
    assert store.read("adapters/t/v1/adapter/adapter_config.json") == b"{}"


def test_keys_cannot_leave_the_store(store: Store) -> None:
    for bad in ("../x", "/etc/passwd", "a//b", "a/./b", ""):
        with pytest.raises(StoreError):
            store.write(bad, b"")


def test_image_store_on_the_store(store: Store) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, format="PNG")
    images = ImageStore(store)
    stored = images.put(buf.getvalue())
    assert images.read(stored.sha256) == buf.getvalue() and images.all_hashes() == {stored.sha256}
    assert images.materialise(stored.sha256).read_bytes() == buf.getvalue()
    assert images.delete(stored.sha256) and images.all_hashes() == set()


def test_open_store_by_url(tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store(tmp_path / "s", tmp_path / "c"), LocalFolderStore)
    assert isinstance(open_store(f"file://{tmp_path}/s", tmp_path / "c"), LocalFolderStore)
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    remote = open_store("s3://unit-store/by-url", tmp_path / "c")
    remote.write("k", b"v")
    assert isinstance(remote, ObjectStore) and remote.read("k") == b"v"
    with pytest.raises(StoreError):
        open_store("ftp://host/x", tmp_path / "c")
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
