"""Scale-out settings: the store, the training backend and how engines get adapters, from env and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import _split_engine_args, build_parser, settings_from_args
from gateway.settings import Settings
from gateway.training.backends import LocalBackend, training_backend
from gateway.training.ray_jobs import RayBackend
from models_store.store import LocalFolderStore


def test_defaults_keep_everything_on_this_machine(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    assert settings.store_location == str(tmp_path / "store") and settings.training_backend == "local"
    assert settings.engine_adapter_source == "path"
    launch, _ = training_backend(settings, LocalFolderStore(tmp_path / "store"))
    assert isinstance(launch, LocalBackend)


def test_ray_needs_an_address() -> None:
    with pytest.raises(ValueError, match="ray_address"):
        Settings.from_env({"VLMGW_TRAINING_BACKEND": "ray"})
    settings = Settings.from_env(
        {"VLMGW_TRAINING_BACKEND": "ray", "VLMGW_RAY_ADDRESS": "http://127.0.0.1:8265"}
    )
    launch, _ = training_backend(settings, LocalFolderStore(Path("/tmp/unused-store")))
    assert isinstance(launch, RayBackend) and launch.client.base == "http://127.0.0.1:8265"


def test_flags(tmp_path: Path) -> None:
    own, engine = _split_engine_args(
        ["serve", "--engine-url", "http://127.0.0.1:9", "--store-url", "s3://bucket/vlmgw",
         "--training-backend", "ray", "--ray-address", "http://127.0.0.1:8265",
         "--engine-adapter-source", "store"]
    )  # fmt: skip
    settings = settings_from_args(build_parser().parse_args(own), engine)
    assert (settings.store_url, settings.training_backend, settings.engine_adapter_source) == (
        "s3://bucket/vlmgw", "ray", "store",
    )  # fmt: skip
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--engine-adapter-source", "nfs"])
