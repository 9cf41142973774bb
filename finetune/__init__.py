"""LoRA fine-tuning of vision-language models: ``python -m finetune run SPEC.json``.

``spec`` (the job description, torch-free), ``data`` (examples to batches), ``train`` (the loop),
``checkpoint``, ``curve`` (loss curve JSON + PNG), ``progress`` (JSON-line events). Importing the package
imports no torch.
"""
