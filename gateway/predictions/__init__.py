"""vlm.run's predictions API: ``/v1/image/generate`` and ``/v1/video/generate`` with domains, batch jobs,
signed callbacks, grounding and the machine-learning loop (README "Predictions API")."""
