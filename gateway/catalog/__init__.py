"""The model catalog: which models exist for a caller, and where a request for one goes."""

from gateway.catalog.catalog import ModelCatalog, ModelKind, Target, card
from gateway.catalog.task_models import TaskModels

__all__ = ["ModelCatalog", "ModelKind", "Target", "TaskModels", "card"]
