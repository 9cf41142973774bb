"""Errors of the media step: every one is a 400 in OpenAI's shape that names the part and the reason.

Deep code (fetching, decoding) raises these without knowing where the part sits in the request; the pipeline
catches them once and calls ``located`` to add the JSON path of the part (``param``, e.g.
``messages[0].content[1].image_url.url``) and to put that path at the front of the message.
"""

from __future__ import annotations

from gateway.errors import BadRequestError


class MediaError(BadRequestError, code="invalid_media"):
    """A content part's media could not be used; the subclass says why (its ``code``)."""

    def located(self, param: str) -> MediaError:
        """This error, naming the part it is about (only the first location sticks)."""
        if self.param is None:
            self.param = param
            self.message = f"Invalid media at `{param}`: {self.message}"
            self.args = (self.message,)
        return self


class MediaCorrupt(MediaError, code="media_corrupt"):
    """The bytes claim to be media of a known kind but do not decode."""


class MediaUnsupported(MediaError, code="media_unsupported"):
    """A format, scheme or URL form the gateway does not accept."""


class MediaTooLarge(MediaError, code="media_too_large"):
    """Over a byte, pixel, duration or frame limit."""


class MediaTooMany(MediaError, code="media_too_many"):
    """More images or videos in one request than allowed."""


class MediaBlocked(MediaError, code="media_url_blocked"):
    """A URL that resolves to an address the gateway must not fetch from (SSRF guard)."""


class MediaUnreachable(MediaError, code="media_unreachable"):
    """The host could not be resolved or connected to, or answered with an error status."""


class MediaTimeout(MediaError, code="media_fetch_timeout"):
    """Fetching took longer than the configured time-out."""


class MediaNotFound(MediaError):
    """A stored-image reference (``image://ID``) that does not exist in the caller's workspace."""

    default_code = "media_not_found"


class MediaFileMissing(MediaError):
    """A stored image whose record exists but whose file is gone from the model store (410: it was there)."""

    status_code = 410
    default_code = "media_file_missing"


class MediaDecodeTimeout(MediaError):
    """Decoding (a video, most likely) ran past ``media_decode_timeout_s``."""

    default_code = "media_decode_timeout"
