"""The README.md written into every export folder: what the files are and how to load them offline."""

from __future__ import annotations

ADAPTER = """# {name}: LoRA adapter

The adapter as it was trained (PEFT: `adapter_config.json` + `adapter_model.safetensors`), for the base
model `{base}`. Check the files with `sha256sum -c SHA256SUMS`.

Transformers + PEFT:

```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("PATH/TO/{base}")
model = PeftModel.from_pretrained(base, "PATH/TO/THIS/FOLDER")
processor = AutoProcessor.from_pretrained("PATH/TO/{base}")
```

vLLM: `vllm serve PATH/TO/{base} --served-model-name {served} --enable-lora \
--lora-modules {stem}=PATH/TO/THIS/FOLDER`
(`base_model_name_or_path` in `adapter_config.json` is `{served}`, the name the base was served under).
"""

MERGED = """# {name}: merged model

The base model `{base}` with the adapter merged into its weights: a complete Hugging Face model folder
(safetensors, config, processor, tokenizer and chat template), {dtype}. Check the files with
`sha256sum -c SHA256SUMS`.

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("PATH/TO/THIS/FOLDER")
processor = AutoProcessor.from_pretrained("PATH/TO/THIS/FOLDER")
```

vLLM: `vllm serve PATH/TO/THIS/FOLDER`
"""

PT = """# {name}: PyTorch state dict

`model.pt` is `torch.save(model.state_dict())` of the base model `{base}` with the adapter merged in
({dtype}); `config.json` and the processor files describe the model. Check the files with
`sha256sum -c SHA256SUMS`. Load it with the transformers version that wrote it ({transformers}):

```python
import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

folder = "PATH/TO/THIS/FOLDER"
config = AutoConfig.from_pretrained(folder)
model = AutoModelForImageTextToText.from_config(config, dtype=torch.{dtype})
model.load_state_dict(torch.load(f"{{folder}}/model.pt", weights_only=True))
model.eval()
processor = AutoProcessor.from_pretrained(folder)
```
"""

GGUF = """# {name}: GGUF for llama.cpp

- `{stem}.gguf`: the language model (llama.cpp architecture `qwen2vl`, {gguf_type}), with the tokenizer and
  the chat template;
- `mmproj-{stem}.gguf`: the vision encoder and projector (`clip`, projector `qwen2vl_merger`).

The base model `{base}` with the adapter merged in. Check the files with `sha256sum -c SHA256SUMS`.

```bash
llama-mtmd-cli -m {stem}.gguf --mmproj mmproj-{stem}.gguf --image photo.png -p "Describe the image." --temp 0
llama-server -m {stem}.gguf --mmproj mmproj-{stem}.gguf --port 8080   # OpenAI-compatible, images included
```

llama.cpp's Qwen2-VL preprocessing gives an image at least 8 visual tokens (`--image-min-tokens`), so very
small images are scaled up there, which transformers does not do.
"""
