"""The recognition API's services together: what its handlers inject as ``recognition``."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.recognition.entities import RecognitionEntities
from gateway.recognition.service import Recognition
from gateway.recognition.training import RecognitionTraining
from gateway.recognition.training_images import TrainingImages


@dataclass(frozen=True)
class RecognitionApi:
    entities: RecognitionEntities
    images: TrainingImages
    training: RecognitionTraining
    classify: Recognition
