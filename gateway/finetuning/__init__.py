"""OpenAI's files and fine-tuning API (``/v1/files``, ``/v1/fine_tuning/jobs``) on the one job system."""
