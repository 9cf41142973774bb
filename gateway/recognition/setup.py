"""Building the recognition API's services from the gateway's own (called by the composition root)."""

from __future__ import annotations

from gateway.media.fetch import Fetcher
from gateway.openai_api.chat import ChatService
from gateway.platform_api.images import ImageService
from gateway.platform_api.tasks import TaskService
from gateway.recognition.api import RecognitionApi
from gateway.recognition.classifier import Classifier
from gateway.recognition.descriptors import Descriptors
from gateway.recognition.entities import RecognitionEntities
from gateway.recognition.service import Recognition
from gateway.recognition.training import RecognitionTraining
from gateway.recognition.training_images import TrainingImages
from gateway.settings import Settings
from gateway.training.service import TrainingService, local_model_dir


def build_recognition(
    settings: Settings, tasks: TaskService, images: ImageService, training: TrainingService,
    chat: ChatService, fetcher: Fetcher | None,
) -> RecognitionApi:  # fmt: skip
    entities = RecognitionEntities(tasks)

    def base_model_dir() -> str | None:
        return local_model_dir(settings.model) if settings.model else None

    classify = Recognition(
        entities, Classifier(chat), Descriptors(base_model_dir), fetcher,
        max_bytes=settings.media_image_max_bytes, max_pixels=settings.media_image_max_pixels,
    )  # fmt: skip
    return RecognitionApi(
        entities=entities,
        images=TrainingImages(images, entities),
        training=RecognitionTraining(entities, training),
        classify=classify,
    )
