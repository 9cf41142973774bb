"""The vLLM CPU LoRA fix (adapters/vllm_cpu_lora.py) on vLLM's own torch ops: tokens without an adapter
(index -1) get no adapter's weights; tokens with one get exactly what vLLM computes. The real-engine proof
is tests/integration/test_adapter_mixing.py."""

from __future__ import annotations

import pytest
import torch

from adapters import vllm_cpu_lora

lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")
punica_cpu = pytest.importorskip("vllm.lora.punica_wrapper.punica_cpu")

SLOTS, RANK, HIDDEN, OUT = 4, 8, 16, 12
INDICES = torch.tensor([-1, 0, 3, -1, 2])


def unpatched() -> object:
    """vLLM's own bgmv_shrink, even where a test of this session has already patched it."""
    return getattr(lora_ops.bgmv_shrink, "__wrapped__", lora_ops.bgmv_shrink)


def weights(seed: int, rows: int, cols: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(SLOTS, 1, rows, cols, generator=generator)  # vLLM's stacked (slot, 1, out, in) layout


def lora_delta(shrink: object, x: torch.Tensor) -> torch.Tensor:
    """What a LoRA linear adds to the base output: shrink (x @ A) then expand (@ B), as punica_cpu does."""
    a, b = weights(1, RANK, HIDDEN), weights(2, OUT, RANK)
    buffer = torch.zeros(x.shape[0], RANK)
    shrink(x, a, buffer, INDICES, 0.5)  # type: ignore[operator]
    y = torch.zeros(x.shape[0], OUT)
    lora_ops.bgmv_expand(buffer, b, y, INDICES, add_inputs=True)
    return y


def test_tokens_without_an_adapter_get_nothing_and_the_others_what_vllm_computes() -> None:
    x = torch.randn(len(INDICES), HIDDEN, generator=torch.Generator().manual_seed(0))
    original = lora_delta(unpatched(), x)
    fixed = lora_delta(vllm_cpu_lora.zero_unadapted_rows(lora_ops.bgmv_shrink), x)
    unadapted = INDICES < 0
    assert torch.count_nonzero(fixed[unadapted]) == 0
    assert torch.equal(fixed[~unadapted], original[~unadapted])
    # what vLLM's op does with -1: the last slot's weights (the bug the plugin exists for)
    assert torch.count_nonzero(original[unadapted]) > 0


def test_a_batch_with_no_unadapted_token_is_untouched() -> None:
    x = torch.randn(3, HIDDEN, generator=torch.Generator().manual_seed(3))
    indices = torch.tensor([0, 1, 3])
    a = weights(4, RANK, HIDDEN)
    want, got = torch.zeros(3, RANK), torch.zeros(3, RANK)
    unpatched()(x, a, want, indices, 1.0)  # type: ignore[operator]
    vllm_cpu_lora.zero_unadapted_rows(lora_ops.bgmv_shrink)(x, a, got, indices, 1.0)
    assert torch.equal(got, want)


def test_register_patches_the_decode_and_prefill_paths_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lora_ops, "bgmv_shrink", lora_ops.bgmv_shrink)  # restored after the test
    monkeypatch.setattr(punica_cpu, "bgmv_shrink", punica_cpu.bgmv_shrink)
    monkeypatch.delenv("VLMGW_CPU_LORA_FIX", raising=False)
    vllm_cpu_lora.register()
    vllm_cpu_lora.register()  # vLLM loads plugins in every process, sometimes twice in one
    patched = lora_ops.bgmv_shrink
    assert punica_cpu.bgmv_shrink is patched and getattr(patched, vllm_cpu_lora._FIXED)
    assert not getattr(patched.__wrapped__, vllm_cpu_lora._FIXED, False)  # wrapped once, not twice
    # the prefill path (sgmv_shrink) goes through the patched bgmv_shrink of its module
    x = torch.randn(4, HIDDEN, generator=torch.Generator().manual_seed(5))
    out = torch.zeros(4, RANK)
    lora_ops.sgmv_shrink(x, weights(6, RANK, HIDDEN), out, torch.tensor([0, 2]), torch.tensor([2, 2]),
                         torch.tensor([-1, 1]), 2, 2, 4, 1.0)  # fmt: skip
    assert torch.count_nonzero(out[:2]) == 0 and torch.count_nonzero(out[2:]) > 0


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lora_ops, "bgmv_shrink", lora_ops.bgmv_shrink)
    before = lora_ops.bgmv_shrink
    monkeypatch.setenv("VLMGW_CPU_LORA_FIX", "0")
    vllm_cpu_lora.register()
    assert lora_ops.bgmv_shrink is before
