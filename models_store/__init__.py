"""models_store."""
