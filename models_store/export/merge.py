"""Load a base model with its LoRA adapter merged in (torch, transformers and peft imported here only).

The base is loaded in float32 so the merge (W + B·A·scale) loses nothing, then cast back to the dtype the
base was saved in. Every weight of the adapter file must land in the model: peft only warns about keys it
cannot place and would leave those LoRA weights at zero, which would silently export the base model.
"""

from __future__ import annotations

from typing import Any

from models_store.export.source import ExportError, ExportSource

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "fp32": "float32"}


def saved_dtype(config: dict[str, Any]) -> str:
    """The dtype the base model's weights are stored in (``dtype`` / ``torch_dtype`` of its config)."""
    for holder in (config, config.get("text_config") or {}):
        for key in ("dtype", "torch_dtype"):
            value = holder.get(key)
            if isinstance(value, str) and value in _DTYPES:
                return _DTYPES[value]
    return "float32"


def load_processor(source: ExportSource) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(source.base_dir))


def load_merged(source: ExportSource) -> Any:
    """The base model with the adapter merged in, in the base's saved dtype, in eval mode."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(str(source.base_dir), dtype=torch.float32)
    try:
        peft_model = PeftModel.from_pretrained(base, str(source.adapter_dir), is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ExportError(f"the adapter does not fit the base model: {exc}") from None
    check_adapter_loaded(peft_model, source)
    merged = peft_model.merge_and_unload()
    merged = merged.to(getattr(torch, saved_dtype(source.base_config())))
    merged.eval()
    return merged


def check_adapter_loaded(peft_model: Any, source: ExportSource) -> None:
    """Every tensor of the adapter file is in the model with the same values."""
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    saved = load_file(str(source.adapter_dir / "adapter_model.safetensors"))
    # save_embedding_layers=False: "auto" would look the adapter's base name up on the Hugging Face Hub.
    loaded = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    missing = [k for k, v in saved.items() if k not in loaded or not torch.equal(loaded[k].to(v.dtype), v)]
    if missing or not saved:
        example = f" (e.g. `{missing[0]}`)" if missing else ""
        raise ExportError(
            f"the adapter does not fit the base model: {len(missing)} of {len(saved)} adapter weights "
            f"could not be placed{example}"
        )
