"""A full disk while storing a file, and a database that is unavailable for a moment: what the user sees
(507 / 503 in OpenAI's error shape, never a 500) and what is left behind (nothing half-written)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from finetune import checkpoint
from finetune.curve import LossCurve
from gateway.errors import detail_for, infrastructure_error
from models_store.store import LocalFolderStore, write_atomic


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_runs_out_of_space_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file"
    write_atomic(target, b"old bytes")

    def chunks() -> Iterator[bytes]:
        yield b"new bytes, first part"
        raise disk_full()

    with pytest.raises(OSError) as info:
        write_atomic(target, chunks())
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old bytes"
    assert [p.name for p in target.parent.iterdir()] == ["file"]


def test_a_store_write_that_fails_at_fsync_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFolderStore(tmp_path)

    def no_space(fd: int) -> None:
        raise disk_full()

    monkeypatch.setattr("models_store.store.os.fsync", no_space)
    with pytest.raises(OSError):
        store.write("images/ab/cd/x", b"x" * 1000)
    assert not store.exists("images/ab/cd/x")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def save(tmp_path: Path, step: int, adapter: object) -> Path:
    state = checkpoint.TrainerState(step, {}, {}, {}, LossCurve(train=[], held_out=[], lr=[]))
    return checkpoint.save(tmp_path, state, adapter)


def test_a_checkpoint_that_runs_out_of_space_is_not_left_half_written(tmp_path: Path) -> None:
    good = save(tmp_path, 10, lambda d: (d / "adapter_model.safetensors").write_bytes(b"w" * 10))

    def half_then_full(folder: Path) -> None:
        (folder / "adapter_config.json").write_text("{}")
        raise disk_full()

    with pytest.raises(OSError):
        save(tmp_path, 20, half_then_full)
    assert checkpoint.latest(tmp_path) == good  # resume picks the last complete checkpoint
    assert sorted(p.name for p in checkpoint.checkpoints_dir(tmp_path).iterdir()) == [good.name]


@pytest.mark.parametrize("exc", [disk_full(), OSError(errno.EDQUOT, "Disk quota exceeded"),
                                 OSError(errno.EFBIG, "File too large")])  # fmt: skip
def test_a_full_disk_is_a_507_naming_it(exc: OSError) -> None:
    status, detail, _ = detail_for(exc)
    assert (status, detail.code, detail.type) == (507, "insufficient_storage", "server_error")
    assert exc.strerror in detail.message and "nothing was stored" in detail.message


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("database is locked"),
        OperationalError("unable to open database file"),
        DBConnectionError("connection refused"),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InterfaceError("connection is closed"),
    ],
)
def test_an_unavailable_database_is_a_503_with_retry_after(exc: Exception) -> None:
    status, detail, headers = detail_for(exc)
    assert (status, detail.code, detail.type) == (503, "database_unavailable", "service_unavailable")
    assert headers["Retry-After"].isdigit()
    assert "retry" in detail.message


def test_other_database_errors_are_not_called_unavailable() -> None:
    assert infrastructure_error(OperationalError("no such table: task")) is None
    assert infrastructure_error(IntegrityError("database is locked")) is None  # a conflict stays a 409
    assert infrastructure_error(OSError(errno.EACCES, "Permission denied")) is None
    assert infrastructure_error(asyncpg.InterfaceError("another operation is in progress")) is None
    assert infrastructure_error(OperationalError("database or disk is full")) is not None
