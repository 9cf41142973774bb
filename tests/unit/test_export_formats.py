"""Each export format on the tiny model: the files are complete, checksummed, and answer like the adapter.

The adapter (random, non-zero LoRA weights, so merging really changes the model) is applied to the tiny
Qwen2-VL base with peft as the reference; every format must give the same next-token logits (float32, so
to ~1e-5) and the same greedy text on an image prompt. The GGUF files are read back with the ``gguf``
package: metadata, the full tensor list llama.cpp loads, and tensor values against the merged weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from models_store.export import ExportError, ExportProgress, ExportRefused, ExportSource
from models_store.export.exporter import export_archive, export_folder
from models_store.tiny_model import cached_tiny_model
from tests.support.export_model import greedy, image_inputs, last_logits, make_adapter

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def base_dir() -> Path:
    return cached_tiny_model()


@pytest.fixture(scope="module")
def source(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportSource:
    adapter = make_adapter(base_dir, tmp_path_factory.mktemp("adapter") / "adapter")
    return ExportSource(adapter_dir=adapter, base_dir=base_dir, name="task-1234-v2")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("image") / "red.png"
    Image.new("RGB", (56, 56), (220, 30, 30)).save(path)
    return path


@pytest.fixture(scope="module")
def exported(source: ExportSource, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in ("adapter", "merged", "pt"):
        export_folder(source, fmt, root / fmt, ExportProgress())
    for gguf_type in ("f32", "f16"):
        export_folder(source, "gguf", root / f"gguf-{gguf_type}", ExportProgress(), gguf_type=gguf_type)
    for path in root.iterdir():
        out[path.name] = path
    return out


@pytest.fixture(scope="module")
def reference(source: ExportSource, image: Path) -> dict[str, Any]:
    """The adapter applied with peft: next-token logits and greedy text on the image prompt."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(source.base_dir))
    base = AutoModelForImageTextToText.from_pretrained(str(source.base_dir), dtype=torch.float32)
    base_logits = last_logits(base, image_inputs(processor, image))
    model = PeftModel.from_pretrained(base, str(source.adapter_dir)).eval()
    inputs = image_inputs(processor, image)
    return {
        "logits": last_logits(model, inputs),
        "text": greedy(model, processor, inputs),
        "base_logits": base_logits,
    }


def test_the_adapter_changes_the_model(reference: dict[str, Any]) -> None:
    """Otherwise every comparison below would pass with the base model's weights."""
    assert not torch.allclose(reference["logits"], reference["base_logits"], atol=1e-2)


def check_sums(folder: Path) -> None:
    listed = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_every_export_is_complete_and_checksummed(exported: dict[str, Path]) -> None:
    for name, folder in exported.items():
        check_sums(folder)
        info = json.loads((folder / "export.json").read_text())
        assert info["model"] == "task-1234-v2" and info["base_model_type"] == "qwen2_vl", name
        assert "# task-1234-v2" in (folder / "README.md").read_text()
    assert not [p for p in exported["merged"].parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_adapter_export_is_the_trained_adapter(
    exported: dict[str, Path], source: ExportSource, image: Path, reference: dict[str, Any]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = exported["adapter"]
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (folder / name).read_bytes() == (source.adapter_dir / name).read_bytes()
    base = AutoModelForImageTextToText.from_pretrained(str(source.base_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    processor = AutoProcessor.from_pretrained(str(source.base_dir))
    assert torch.allclose(last_logits(model, image_inputs(processor, image)), reference["logits"], atol=1e-5)


def test_merged_export_answers_like_the_adapter(
    exported: dict[str, Path], image: Path, reference: dict[str, Any]
) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = exported["merged"]
    model = AutoModelForImageTextToText.from_pretrained(str(folder)).eval()
    processor = AutoProcessor.from_pretrained(str(folder))  # processor and chat template come along
    inputs = image_inputs(processor, image)
    assert torch.allclose(last_logits(model, inputs), reference["logits"], atol=1e-4)
    assert greedy(model, processor, inputs) == reference["text"]
    assert not (folder / "adapter_config.json").exists()


def test_pt_export_loads_with_its_note_and_answers_like_the_adapter(
    exported: dict[str, Path], image: Path, reference: dict[str, Any]
) -> None:
    folder = exported["pt"]
    note = (folder / "README.md").read_text()
    code = note.split("```python\n", 1)[1].split("```", 1)[0].replace("PATH/TO/THIS/FOLDER", str(folder))
    scope: dict[str, Any] = {}
    exec(code, scope)  # the loader exactly as the note tells users to write it
    model, processor = scope["model"], scope["processor"]
    inputs = image_inputs(processor, image)
    assert torch.allclose(last_logits(model, inputs), reference["logits"], atol=1e-4)
    assert greedy(model, processor, inputs) == reference["text"]


def merged_tensor(folder: Path, name: str) -> Any:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))[name]


def test_gguf_language_model_reads_back_with_llama_cpp_names_and_values(exported: dict[str, Path]) -> None:
    import gguf

    reader = gguf.GGUFReader(exported["gguf-f32"] / "task-1234-v2.gguf")
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert meta["general.architecture"] == "qwen2vl" and meta["general.type"] == "model"
    assert meta["qwen2vl.block_count"] == 2 and meta["qwen2vl.embedding_length"] == 128
    assert meta["qwen2vl.attention.head_count_kv"] == 1
    assert meta["qwen2vl.rope.dimension_sections"] == [8, 12, 12, 0]
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(tokens) == 2048 and types[tokens.index("<|im_end|>")] == gguf.TokenType.CONTROL
    assert meta["tokenizer.ggml.eos_token_id"] == tokens.index("<|im_end|>")
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    tensors = {t.name: t for t in reader.tensors}
    per_layer = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down"}  # fmt: skip
    expected = {"token_embd.weight", "output_norm.weight"}
    expected |= {f"blk.{i}.{t}.weight" for i in range(2) for t in per_layer}
    expected |= {f"blk.{i}.attn_{x}.bias" for i in range(2) for x in "qkv"}
    assert set(tensors) == expected  # tied lm_head: llama.cpp reuses token_embd
    merged = exported["merged"]
    for gguf_name, hf_name in [
        ("blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
        ("token_embd.weight", "model.embed_tokens.weight"),
    ]:
        want = merged_tensor(merged, hf_name)
        got = torch.from_numpy(tensors[gguf_name].data.copy()).reshape(want.shape)
        assert torch.equal(got, want), gguf_name


def test_gguf_vision_projector_reads_back_as_llama_cpp_expects(exported: dict[str, Path]) -> None:
    import gguf

    reader = gguf.GGUFReader(exported["gguf-f32"] / "mmproj-task-1234-v2.gguf")
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert meta["general.architecture"] == "clip" and meta["general.type"] == "mmproj"
    assert meta["clip.projector_type"] == "qwen2vl_merger" and meta["clip.has_vision_encoder"] is True
    assert meta["clip.vision.projection_dim"] == 128 and meta["clip.vision.embedding_length"] == 64
    assert meta["clip.vision.block_count"] == 2 and meta["clip.vision.patch_size"] == 14
    assert meta["clip.vision.spatial_merge_size"] == 2
    assert meta["clip.vision.image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    tensors = {t.name: t for t in reader.tensors}
    per_block = {"ln1", "ln2", "attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down"}
    expected = {"v.patch_embd.weight", "v.patch_embd.weight.1"}
    expected |= {f"v.blk.{i}.{t}.{p}" for i in range(2) for t in per_block for p in ("weight", "bias")}
    expected |= {f"{t}.{p}" for t in ("v.post_ln", "mm.0", "mm.2") for p in ("weight", "bias")}
    assert set(tensors) == expected
    merged = exported["merged"]
    patch = merged_tensor(merged, "visual.patch_embed.proj.weight")
    for index, name in enumerate(("v.patch_embd.weight", "v.patch_embd.weight.1")):
        got = torch.from_numpy(tensors[name].data.copy()).reshape(patch[:, :, index].shape)
        assert torch.equal(got, patch[:, :, index]), name
    qkv = merged_tensor(merged, "visual.blocks.1.attn.qkv.weight")
    for piece, name in zip(qkv.chunk(3), ("attn_q", "attn_k", "attn_v"), strict=True):
        got = torch.from_numpy(tensors[f"v.blk.1.{name}.weight"].data.copy()).reshape(piece.shape)
        assert torch.equal(got, piece), name


def test_gguf_f16_keeps_norms_and_biases_in_f32(exported: dict[str, Path]) -> None:
    import gguf

    for file in ("task-1234-v2.gguf", "mmproj-task-1234-v2.gguf"):
        reader = gguf.GGUFReader(exported["gguf-f16"] / file)
        assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16
        for tensor in reader.tensors:
            want = gguf.GGMLQuantizationType.F32 if len(tensor.shape) == 1 else gguf.GGMLQuantizationType.F16
            assert tensor.tensor_type == want, (file, tensor.name)
    small = (exported["gguf-f16"] / "task-1234-v2.gguf").stat().st_size
    assert small < 0.6 * (exported["gguf-f32"] / "task-1234-v2.gguf").stat().st_size


def test_archive_is_a_tar_of_the_folder_with_its_sha256(source: ExportSource, tmp_path: Path) -> None:
    progress = ExportProgress()
    result = export_archive(source, "adapter", tmp_path / "m.tar", progress)
    data = (tmp_path / "m.tar").read_bytes()
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["archive_bytes"] == len(data)
    assert (tmp_path / "m.tar.sha256").read_text() == f"{result['sha256']}  m.tar\n"
    with tarfile.open(tmp_path / "m.tar") as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "x", filter="data")
    assert "task-1234-v2-adapter/adapter_model.safetensors" in names
    check_sums(tmp_path / "x" / "task-1234-v2-adapter")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tar", "m.tar.sha256", "x"]  # folder removed
    assert [e["event"] for e in progress.events][-1] == "progress" and progress.events[-1]["progress"] == 1.0


def test_gguf_of_another_architecture_is_refused_naming_why(source: ExportSource, tmp_path: Path) -> None:
    base = tmp_path / "llava"
    shutil.copytree(source.base_dir, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    other = ExportSource(adapter_dir=source.adapter_dir, base_dir=base, name="m")
    with pytest.raises(ExportRefused, match="`llava`"):
        export_folder(other, "gguf", tmp_path / "out", ExportProgress())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llava"]  # nothing written


def test_an_adapter_that_does_not_fit_the_base_fails_and_leaves_nothing(
    source: ExportSource, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    adapter = tmp_path / "adapter"
    shutil.copytree(source.adapter_dir, adapter)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    renamed = {k.replace("layers.0.", "layers.7."): v for k, v in weights.items()}  # a layer the base lacks
    save_file(renamed, str(adapter / "adapter_model.safetensors"))
    broken = ExportSource(adapter_dir=adapter, base_dir=source.base_dir, name="m")
    with (
        pytest.raises(ExportError, match="does not fit the base model"),
        pytest.warns(UserWarning, match="missing adapter keys"),  # peft itself only warns, and goes on
    ):
        export_folder(broken, "merged", tmp_path / "out", ExportProgress())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_an_occupied_output_folder_is_refused(source: ExportSource, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an empty directory"):
        export_folder(source, "adapter", tmp_path / "out", ExportProgress())
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep me"


def run_child(*args: str) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, "-m", "models_store.export", "run", "--quiet", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_child_process_reports_json_lines_and_exit_status(source: ExportSource, tmp_path: Path) -> None:
    common = ["--adapter", str(source.adapter_dir), "--name", "m"]
    base = ["--base", str(source.base_dir)]
    code, events = run_child(*common, *base, "--format", "adapter", "--archive", str(tmp_path / "a.tar"))
    assert code == 0 and events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["sha256"] == hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest()
    progress = [e["progress"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    no_base = ["--base", str(tmp_path / "missing")]
    code, events = run_child(*common, *no_base, "--format", "gguf", "--out", str(tmp_path / "g"))
    assert code == 1 and events[-1]["event"] == "error" and "config.json" in events[-1]["message"]
    assert not (tmp_path / "g").exists()
