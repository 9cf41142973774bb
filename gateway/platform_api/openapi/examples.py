"""Response examples (values from Ximilar's VLM API documentation) for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from gateway.platform_api import schemas as wire

WS = "748e50e4-d081-4924-b9e7-f500aac6a71d"
DATASET = "8797c273-b1d3-4e6f-82bb-adfb719415fe"
TASK_EXAMPLE = {
    "id": "dbb498ba-cf24-4400-9897-d5196444a880",
    "name": "My Custom Task",
    "created": "2025-12-17T14:59:34.529951Z",
    "description": "Custom VLM task for structured image analysis",
    "auto_deploy": True,
    "production_version": 0,
    "system_prompt": "You are a helpful assistant...",
    "user_prompt": "Analyse the image[s]...",
    "max_tokens": 1000,
    "base_model": "tiny-vlm",
    "datasets": [DATASET],
    "dataset_count": 1,
    "workspace": WS,
}
DATASET_EXAMPLE = {
    "id": DATASET,
    "name": "My Training Dataset",
    "created": "2025-12-21T10:00:00Z",
    "description": "Training samples for the task",
    "version": "2025-12-21",
    "system_prompt": "You are a helpful assistant...",
    "user_prompt": "Analyse the image[s]...",
    "result_template": '{"grade": {{grade}}, "explain": "{{explain}}"}',
    "samples_count": 150,
    "variables_count": 2,
    "workspace": WS,
}
VARIABLE_EXAMPLE = {
    "id": "f82b01ed-e65d-4730-a458-2966cbf86994",
    "dataset": DATASET,
    "dataset_name": "My Training Dataset",
    "name": "grade",
    "type": "float",
    "required": True,
    "min_value": 0.0,
    "max_value": 10.0,
    "step_size": 0.5,
}
IMAGE_EXAMPLE = {
    "id": "0b1e4c1a-6f2a-4c55-9d7e-2f7d8d0a9a11",
    "created": "2025-12-21T10:00:00Z",
    "width": 640,
    "height": 480,
    "format": "JPEG",
    "size_bytes": 48213,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "file_name": "jacket.jpg",
    "file": "/vlm/v2/image/0b1e4c1a-6f2a-4c55-9d7e-2f7d8d0a9a11/file/",
    "meta_data": {},
    "workspace": WS,
}
SAMPLE_EXAMPLE = {
    "id": "5d0c8a52-8c1b-4df8-a4f4-3b0f4f0c6b7e",
    "created": "2025-12-21T10:00:00Z",
    "dataset": DATASET,
    "dataset_name": "My Training Dataset",
    "name": "Sample 1",
    "test": False,
    "type": "multi_ordered",
    "input_meta_data": {"style": "elegant", "category": "jacket"},
    "images": [
        {
            "id": IMAGE_EXAMPLE["id"],
            "position": 0,
            "width": 640,
            "height": 480,
            "format": "JPEG",
            "file": IMAGE_EXAMPLE["file"],
        }
    ],
    "image_count": 1,
    "variable_values": [
        {
            "dataset_variable": VARIABLE_EXAMPLE["id"],
            "name": "grade",
            "type": "float",
            "value": {"value": 8.5},
        }
    ],
    "workspace": WS,
}


def _spec(container: type, value: Any, status: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=container, examples=[Example(summary="example", value=value)])
    }


def _page(value: dict[str, Any]) -> dict[str, Any]:
    return {"count": 1, "next": None, "previous": None, "results": [value]}


def task(status: int = 200) -> dict[int, ResponseSpec]:
    return _spec(wire.Task, TASK_EXAMPLE, status)


def dataset(status: int = 200) -> dict[int, ResponseSpec]:
    return _spec(wire.Dataset, DATASET_EXAMPLE, status)


def variable(status: int = 200) -> dict[int, ResponseSpec]:
    return _spec(wire.Variable, VARIABLE_EXAMPLE, status)


def image(status: int = 200) -> dict[int, ResponseSpec]:
    return _spec(wire.Image, IMAGE_EXAMPLE, status)


def sample(status: int = 200) -> dict[int, ResponseSpec]:
    return _spec(wire.Sample, SAMPLE_EXAMPLE, status)


task_page = _spec(wire.TaskPage, _page(TASK_EXAMPLE), 200)
dataset_page = _spec(wire.DatasetPage, _page(DATASET_EXAMPLE), 200)
variable_page = _spec(wire.VariablePage, _page(VARIABLE_EXAMPLE), 200)
image_page = _spec(wire.ImagePage, _page(IMAGE_EXAMPLE), 200)
sample_page = _spec(wire.SamplePage, _page(SAMPLE_EXAMPLE), 200)
