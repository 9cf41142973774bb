"""Media settings from the environment, and how the engine is told about the hand-off folder."""

from __future__ import annotations

from pathlib import Path

from gateway.engines import build_engines, media_via_files
from gateway.settings import Settings


def test_media_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "VLMGW_MEDIA_FETCH_ALLOW": "10.0.0.0/8, images.internal",
            "VLMGW_MEDIA_MAX_IMAGES": "4",
            "VLMGW_MEDIA_VIDEO_MODE": "native",
            "VLMGW_MEDIA_FETCH_TIMEOUT_S": "2.5",
        }
    )
    assert settings.media_fetch_allow == ["10.0.0.0/8", "images.internal"]
    assert (settings.media_max_images, settings.media_video_mode, settings.media_fetch_timeout_s) == (
        4,
        "native",
        2.5,
    )


def test_files_are_used_only_for_a_spawned_engine_unless_forced(tmp_path: Path) -> None:
    assert media_via_files(Settings(data_dir=tmp_path, model="m"))
    assert not media_via_files(Settings(data_dir=tmp_path, engine_urls=["http://127.0.0.1:1"]))
    assert not media_via_files(Settings(data_dir=tmp_path, model="m", media_handoff="data"))
    assert media_via_files(Settings(data_dir=tmp_path, engine_urls=["http://x:1"], media_handoff="file"))


def test_spawned_engine_may_read_the_handoff_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model="m", engine_port=1)
    (engine,) = build_engines(settings, say=lambda _m: None)
    assert engine.supervisor is not None
    args = engine.supervisor.spec.extra_args
    assert args[args.index("--allowed-local-media-path") + 1] == str(settings.media_handoff_dir.resolve())
    (data_engine,) = build_engines(settings.replace(media_handoff="data"), say=lambda _m: None)
    assert data_engine.supervisor is not None
    assert "--allowed-local-media-path" not in data_engine.supervisor.spec.extra_args
