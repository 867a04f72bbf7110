"""Getting the image bytes out of a POST /predict, within limits.

Accepted: `multipart/form-data` with a file field `image` (what the page and the seed app's
280 x 280 canvas post), or a bare body with an `image/*` content type. The body is read with a
byte cap (checked against Content-Length first, then while streaming, so a chunked upload cannot
exceed it either) and within time: a pause of more than `read_timeout_s` or an upload longer
than `upload_timeout_s` is answered 408 and the connection closed (a client trickling its body
would otherwise hold a connection and its buffer for ever); the pixel cap is decode_image's.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..errors import BadImageError

FIELD = "image"


class SlowUpload(BadImageError):
    """The upload paused too long or took too long: 408, and the connection is closed."""

    def __init__(self, message: str):
        super().__init__(message, status=408)


async def _capped(request: Request, limit: int, read_timeout_s: float | None = None,
                  upload_timeout_s: float | None = None) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadImageError(f"the upload is {int(declared)} bytes, more than the limit of {limit}",
                            status=413)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + upload_timeout_s if upload_timeout_s else None
    body = bytearray()
    chunks = request.stream().__aiter__()
    while True:
        wait = read_timeout_s
        if deadline is not None:
            left = deadline - loop.time()
            wait = left if wait is None else min(wait, left)
            if left <= 0:
                raise SlowUpload(f"the upload took more than {upload_timeout_s:g} s "
                                 f"({len(body)} bytes arrived)")
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), wait)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise SlowUpload(f"the upload took more than {upload_timeout_s:g} s "
                                 f"({len(body)} bytes arrived)") from None
            raise SlowUpload(f"the upload paused for more than {read_timeout_s:g} s "
                             f"({len(body)} bytes arrived)") from None
        body += chunk
        if len(body) > limit:
            raise BadImageError(f"the upload is more than the limit of {limit} bytes", status=413)
    return bytes(body)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_upload(request: Request, limit: int, read_timeout_s: float | None = None,
                      upload_timeout_s: float | None = None) -> bytes:
    """The uploaded image's bytes, or BadImageError with the HTTP status to answer."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data",) and not kind.startswith("image/"):
        raise BadImageError(f"content type {kind or 'none'!r} is not accepted; post "
                            f"multipart/form-data with a file field '{FIELD}', or an image/* body",
                            status=415)
    body = await _capped(request, limit, read_timeout_s, upload_timeout_s)
    if kind.startswith("image/"):
        return body
    try:
        form = await MultiPartParser(request.headers, _once(body), max_files=4, max_fields=16).parse()
    except MultiPartException as exc:
        raise BadImageError(f"malformed multipart body: {exc.message}") from None
    except Exception as exc:  # python-multipart's own parse errors
        raise BadImageError(f"malformed multipart body: {exc}") from None
    upload = form.get(FIELD)
    if upload is None:
        names = ", ".join(repr(k) for k in form.keys()) or "none"
        raise BadImageError(f"no field '{FIELD}' in the form (fields: {names})")
    if not isinstance(upload, UploadFile):
        raise BadImageError(f"the field '{FIELD}' must be a file, not text")
    part_type = (upload.content_type or "").split(";")[0].strip().lower()
    if part_type and not (part_type.startswith("image/") or part_type == "application/octet-stream"):
        raise BadImageError(f"the file's content type {part_type!r} is not an image type", status=415)
    data = await upload.read()
    await form.close()
    return data
