"""Training jobs: run `python -m finetune` children and follow them."""
