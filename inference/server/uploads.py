"""Getting the image bytes out of a POST /predict, within limits.

Accepted: `multipart/form-data` with a file field `image` (what the page and the seed app's
280 x 280 canvas post), or a bare body with an `image/*` content type. The body is read with a
byte cap (checked against Content-Length first, then while streaming, so a chunked upload cannot
exceed it either); the pixel cap is decode_image's.
"""
from __future__ import annotations

from typing import AsyncIterator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..errors import BadImageError

FIELD = "image"


async def _capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadImageError(f"the upload is {int(declared)} bytes, more than the limit of {limit}",
                            status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadImageError(f"the upload is more than the limit of {limit} bytes", status=413)
    return bytes(body)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_upload(request: Request, limit: int) -> bytes:
    """The uploaded image's bytes, or BadImageError with the HTTP status to answer."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data",) and not kind.startswith("image/"):
        raise BadImageError(f"content type {kind or 'none'!r} is not accepted; post "
                            f"multipart/form-data with a file field '{FIELD}', or an image/* body",
                            status=415)
    body = await _capped(request, limit)
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
