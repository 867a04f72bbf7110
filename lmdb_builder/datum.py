"""Caffe Datum records, as DIGITS' create_db wrote them and as Caffe's Data layer reads them.

`Datum{channels=1, height=2, width=3, data=4, label=5, float_data=6, encoded=7}`.

Writing (`_array_to_datum` in DIGITS' create_db.py), from the resized uint8 RGB HxWx3 / HxW array:
- `none`: colour is transposed HWC -> CHW and swapped RGB -> **BGR**, grayscale gets a channel
  axis; then `caffe.io.array_to_datum`: channels, height, width, `data` = the C*H*W bytes,
  `label`; `encoded` is left unset and no `float_data` is written.
- `png` / `jpg`: channels, height, width, label, `data` = a PNG or JPEG (quality 90, PIL) of the
  **RGB/L array**, `encoded = true`. Caffe decodes it with OpenCV, which gives BGR, so both paths
  reach the network as BGR (DIGITS issue #59). DIGITS' PNG was PIL's at its default settings;
  here it is png.py's at `png_level` (same pixels, other bytes: faster, about as small).

A greyscale image in a 3-channel dataset may be passed as HxW with `gray_as_rgb`: it is stored as
the RGB image of three equal channels that DIGITS made of it, without making that copy here.

Reading gives what Caffe's DataTransformer sees: a uint8 CxHxW **BGR** array. Encoded data is
decoded here with PIL and swapped RGB -> BGR, the way Caffe's `DecodeDatumToCVMatNative`
(`cv::imdecode(IMREAD_ANYCOLOR)`) keeps grayscale as 1 channel and drops alpha. PNG decodes to
the very same pixels; a JPEG may differ from OpenCV's decoder by a level or so (IDCT rounding).
The common PNGs (8-bit grey, RGB, or palette without transparency: every PNG DIGITS and
lmdb_builder write) go through OpenCV's decoder when OpenCV is installed: the same pixels
(PNG is lossless; tested), decoded about 3.5x faster than PIL (17 vs 62 us for MNIST's 28x28),
which is most of the training data path for small images.
Encoded datums from Caffe's convert_imageset carry 0x0x0 in their header; the image decides.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from prototxt import caffe_pb2

_UNLOADED = object()
cv2 = _UNLOADED  # OpenCV, imported at the first PNG record (0.1-0.2 s, not at every import)


def _opencv():
    """The cv2 module for the PNG fast path, or None where OpenCV is missing."""
    global cv2
    if cv2 is _UNLOADED:
        try:
            import cv2 as module
        except ImportError:  # pragma: no cover - opencv-python-headless is a core dependency
            module = None
        cv2 = module
    return cv2

from .errors import BuilderError
from .png import DEFAULT_LEVEL, encode_png

ENCODINGS = ("png", "jpg", "none")
JPEG_QUALITY = 90


def _encode_image(image: np.ndarray, encoding: str, png_level: int, gray_as_rgb: bool) -> bytes:
    if encoding == "png":
        return encode_png(image, png_level, gray_as_rgb)
    if encoding == "jpg":       # Pillow's libjpeg(-turbo); L -> RGB in C, as DIGITS' RGB array
        pil = Image.fromarray(image)
        buf = io.BytesIO()
        (pil.convert("RGB") if gray_as_rgb else pil).save(buf, format="JPEG", quality=JPEG_QUALITY)
        return buf.getvalue()
    raise ValueError(f"invalid encoding {encoding!r} (one of {', '.join(ENCODINGS)})")


def array_to_datum(image: np.ndarray, label: int, encoding: str = "png",
                   png_level: int = DEFAULT_LEVEL, gray_as_rgb: bool = False) -> caffe_pb2.Datum:
    """A Datum from a uint8 RGB HxWx3 or HxW array (DIGITS' `_array_to_datum`); with
    `gray_as_rgb` an HxW array stands for the RGB image of three equal channels."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 HxW or HxWx3 array, got {image.dtype} {image.shape}")
    gray_as_rgb = gray_as_rgb and image.ndim == 2
    datum = caffe_pb2.Datum()
    if encoding == "none":
        if gray_as_rgb:
            chw = np.broadcast_to(image, (3, *image.shape))
        else:
            chw = image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)[::-1]
        datum.channels, datum.height, datum.width = chw.shape
        datum.data = np.ascontiguousarray(chw).tobytes()
        datum.label = label
        return datum
    datum.channels = 3 if image.ndim == 3 or gray_as_rgb else 1
    datum.height, datum.width = image.shape[:2]
    datum.label = label
    datum.data = _encode_image(image, encoding, png_level, gray_as_rgb)
    datum.encoded = True
    return datum


def encode_datum(image: np.ndarray, label: int, encoding: str = "png",
                 png_level: int = DEFAULT_LEVEL, gray_as_rgb: bool = False) -> bytes:
    """The serialized Datum (the LMDB value) for a resized RGB/L array."""
    return array_to_datum(image, label, encoding, png_level, gray_as_rgb).SerializeToString()


def parse_datum(value: bytes, key: str | None = None) -> caffe_pb2.Datum:
    """Parse an LMDB value into a Datum; `key` names the record in the error."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BuilderError(f"record {key!r} is not a Caffe Datum ({exc})") from None
    return datum


def datum_encoding(datum: caffe_pb2.Datum) -> str:
    """`none` for raw records, else the image format of the data (`png`, `jpg`, ...)."""
    if not datum.encoded:
        return "none"
    data = datum.data
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    try:
        return (Image.open(io.BytesIO(data)).format or "unknown").lower()
    except Exception:
        return "unknown"


def _decode_png_opencv(data: bytes) -> np.ndarray | None:
    """8-bit grey, RGB or palette PNGs (IHDR bit depth 8, colour type 0, 2 or 3) decoded by
    OpenCV as CxHxW BGR; None for any other image, which PIL then decodes."""
    if len(data) < 26 or data[24] != 8 or data[25] not in (0, 2, 3):
        return None
    opencv = _opencv()
    if opencv is None:
        return None
    image = opencv.imdecode(np.frombuffer(data, np.uint8), opencv.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return image[np.newaxis]
    if image.shape[2] == 3:  # BGR already; a palette with transparency gives 4: PIL decides
        return np.ascontiguousarray(image.transpose(2, 0, 1))
    return None


def _decode_image(data: bytes) -> np.ndarray:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        fast = _decode_png_opencv(data)
        if fast is not None:
            return fast
    image = Image.open(io.BytesIO(data))
    image.load()
    mode = image.mode
    if mode.startswith("I;16"):             # OpenCV without IMREAD_ANYDEPTH keeps the high byte
        return (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)[np.newaxis]
    if mode in ("1", "L", "LA"):
        return np.asarray(image.convert("L"))[np.newaxis]
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[::-1])


def datum_to_array(datum: caffe_pb2.Datum, key: str | None = None) -> np.ndarray:
    """The CxHxW array Caffe's Data layer sees: uint8 BGR (float32 for a float_data Datum)."""
    if datum.encoded:
        try:
            return _decode_image(datum.data)
        except Exception as exc:
            raise BuilderError(f"record {key!r}: the encoded image cannot be decoded "
                               f"({type(exc).__name__}: {exc})") from None
    shape = (datum.channels, datum.height, datum.width)
    count = int(np.prod(shape))
    if datum.data:
        if len(datum.data) != count:
            raise BuilderError(f"record {key!r}: raw data holds {len(datum.data)} bytes but the "
                               f"header says {shape[0]}x{shape[1]}x{shape[2]} = {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data):
        if len(datum.float_data) != count:
            raise BuilderError(f"record {key!r}: float_data holds {len(datum.float_data)} values "
                               f"but the header says {shape[0]}x{shape[1]}x{shape[2]} = {count}")
        return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)
    raise BuilderError(f"record {key!r} holds no image data")


def read_datum(value: bytes, key: str | None = None) -> tuple[np.ndarray, int]:
    """(CxHxW BGR array, label) from a serialized Datum, as Caffe's Data layer sees it."""
    datum = parse_datum(value, key)
    return datum_to_array(datum, key), datum.label
