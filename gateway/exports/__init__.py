"""Exports of trained models over the platform API (``/vlm/v2/model/{id}/export/``) and ``vlmgw export``.

The conversions themselves are ``models_store.export`` (run here as a child process); this package owns the
jobs, their archives in the model store, their expiry, and the routes.
"""
