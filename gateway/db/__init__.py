"""The platform's database: Tortoise models (``models``), connection and migrations (``connection``)."""
