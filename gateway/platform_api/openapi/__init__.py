"""OpenAPI extras for the platform API: the upload body (multipart or JSON) and response examples."""

from gateway.platform_api.openapi import examples
from gateway.platform_api.openapi.upload import UploadOperation

__all__ = ["UploadOperation", "examples"]
