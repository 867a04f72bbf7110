"""Reading and writing Caffe files: text (.prototxt nets and solvers) and binary (.caffemodel,
.binaryproto, .solverstate).

Every read names the file in its errors (text: path:line:column and the offending field;
binary: path and byte offset); nets and solvers are upgraded from old formats once, here
(see upgrade.py). Binary readers log which blob storage a file uses (BVLC float data, NVIDIA
Caffe raw FLOAT/FLOAT16/DOUBLE: blobs.py). Every write goes to a temporary name in the target
folder and is renamed when complete, so an interrupted write never leaves a half file that
looks whole.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message

from . import caffe_pb2
from .blobs import blob_array, blob_count, blob_shape, describe_storage  # noqa: F401 (re-exported)
from .errors import PrototxtError
from .upgrade import upgrade_net, upgrade_solver
from .wire import find_fault

M = TypeVar("M", bound=Message)
log = logging.getLogger("prototxt.io")
PathLike = str | os.PathLike

BINARY_SUFFIXES = {".caffemodel", ".binaryproto", ".solverstate", ".pb"}
_POS = re.compile(r"^(\d+):(\d+) : ")
_FIELD = re.compile(r'field named "([^"]+)"')
_FIELD_WINDOW = 400


# ---------------------------------------------------------------- text

def parse_text(text: str, message: M, path: PathLike | None = None) -> M:
    """Merge protobuf text `text` into `message`; errors carry path:line:column."""
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as exc:
        raw = str(exc)
        line, col = exc.GetLine(), exc.GetColumn()
        match = _POS.match(raw)
        if match:
            raw = raw[match.end():]
            line, col = int(match.group(1)), int(match.group(2))
        field = _offending_field(raw) or _field_before(text, line, col)
        type_name = message.DESCRIPTOR.name
        raise PrototxtError(f"not a valid {type_name}: {raw}", path, line=line, column=col,
                            field=field) from None
    return message


def _offending_field(text: str) -> str | None:
    match = _FIELD.search(text)
    if not match:
        return None
    return match.group(1)


def _field_before(text: str, line: int | None, col: int | None) -> str | None:
    """The field name just before line:col in `text` (where the parser stopped)."""
    lines = text.splitlines()
    if not line or not col or line > len(lines):
        return None
    # Only the end of the line matters, and a bounded piece keeps the regex linear on a 200 KB
    # line (the unanchored pattern backtracks cubically on long words before a brace).
    before = lines[line - 1][: col - 1][-_FIELD_WINDOW:]
    tail = max(before.rfind(c) for c in ":{}")
    if tail >= 0 and before[tail] == ":":
        match = re.search(r"(\w+)\s*$", before[:tail])
        if match:
            return match.group(1)
    match = re.search(r"\w+", before[tail + 1:])
    return match.group(0) if match else None


def read_text(path: PathLike, message: M) -> M:
    """Parse the text file at `path` into `message` (no upgrade)."""
    return parse_text(decode_text(_read(path), path), message, path)


def decode_text(data: bytes, path: PathLike | None = None) -> str:
    """The UTF-8 text of a protobuf text file.

    Bytes that are not UTF-8 inside a `#` comment (old files carry Latin-1 copyright lines)
    are replaced, with a warning; anywhere else they are an error naming path:line:column,
    since a name or a source path would silently change."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    out = []
    replaced = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
            continue
        except UnicodeDecodeError as exc:
            start = exc.start
        comment = _comment_start(raw)
        if comment is None or comment > start:
            column = len(raw[:start].decode("utf-8", errors="replace")) + 1
            raise PrototxtError(
                f"byte 0x{raw[start]:02X} is not UTF-8 text; protobuf text files must be UTF-8: "
                "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                path, line=number, column=column) from None
        out.append(raw.decode("utf-8", errors="replace"))
        replaced.append(number)
    log.warning("%s: bytes that are not UTF-8 in the comments on line(s) %s were replaced",
                path or "<string>", ", ".join(map(str, replaced[:10]))
                + (" ..." if len(replaced) > 10 else ""))
    return "\n".join(out)


def _comment_start(line: bytes) -> int | None:
    """The offset of the `#` that starts a comment on `line` (outside quoted strings), if any."""
    quote = None
    escaped = False
    for i, byte in enumerate(line):
        if quote is not None:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == quote:
                quote = None
        elif byte in (0x22, 0x27):  # " '
            quote = byte
        elif byte == 0x23:  # #
            return i
    return None


def format_text(message: Message) -> str:
    """Caffe-style protobuf text (fields in number order, as Caffe and DIGITS print)."""
    return text_format.MessageToString(message)


# ---------------------------------------------------------------- binary

def parse_binary(data: bytes, message: M, path: PathLike | None = None) -> M:
    """Parse serialized protobuf `data` into `message`; errors carry the path and byte offset."""
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        fault = find_fault(data, message.DESCRIPTOR)
        type_name = message.DESCRIPTOR.name
        if fault is None:
            raise PrototxtError(f"not a valid {type_name}: {exc}", path) from None
        raise PrototxtError(f"not a valid {type_name}: field {fault.field}: {fault.reason}", path,
                            offset=fault.offset, field=fault.field) from None
    return message


def read_binary(path: PathLike, message: M) -> M:
    """Parse the binary protobuf file at `path` into `message` (no upgrade)."""
    data = _read(path)
    if not data:
        raise PrototxtError(f"the file is empty; expected a binary {message.DESCRIPTOR.name}", path)
    return parse_binary(data, message, path)


def _is_binary(path: PathLike, data: bytes) -> bool:
    if Path(path).suffix.lower() in BINARY_SUFFIXES:
        return True
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\x00" in data[:65536]


# ---------------------------------------------------------------- typed readers

def read_net(path: PathLike, upgrade: bool = True) -> caffe_pb2.NetParameter:
    """A net from a .prototxt (text) or a .caffemodel (binary), upgraded to the current format."""
    data = _read(path)
    net = caffe_pb2.NetParameter()
    if _is_binary(path, data):
        if not data:
            raise PrototxtError("the file is empty; expected a binary NetParameter", path)
        parse_binary(data, net, path)
    else:
        parse_text(decode_text(data, path), net, path)
    if upgrade:
        upgrade_net(net, str(path))
    return net


def read_caffemodel(path: PathLike, upgrade: bool = True) -> caffe_pb2.NetParameter:
    """Trained weights: a binary NetParameter whose layers carry `blobs` (V1 files upgraded)."""
    net = read_binary(path, caffe_pb2.NetParameter())
    if upgrade:
        upgrade_net(net, str(path))
    blobs = [b for layers in (net.layer, net.layers) for layer in layers for b in layer.blobs]
    log.info("%s: weights: %s", path, describe_storage(blobs))
    return net


def read_solver(path: PathLike, upgrade: bool = True) -> caffe_pb2.SolverParameter:
    """A solver .prototxt, with `solver_type` upgraded to `type`."""
    solver = read_text(path, caffe_pb2.SolverParameter())
    if upgrade:
        upgrade_solver(solver, str(path))
    return solver


def read_blob(path: PathLike) -> caffe_pb2.BlobProto:
    """A .binaryproto blob (e.g. mean.binaryproto) in any storage; its values must fill its
    shape (blob_array gives them as an array)."""
    blob = read_binary(path, caffe_pb2.BlobProto())
    blob_array(blob, path)  # the check; BlobError says expected and found sizes
    log.info("%s: blob: %s", path, describe_storage([blob]))
    return blob


def read_solverstate(path: PathLike) -> caffe_pb2.SolverState:
    """A .solverstate (iteration, learned net file, solver history blobs)."""
    state = read_binary(path, caffe_pb2.SolverState())
    log.info("%s: history: %s", path, describe_storage(state.history))
    return state


# ---------------------------------------------------------------- writing

def write_text(message: Message, path: PathLike) -> Path:
    """Write `message` as protobuf text, atomically."""
    return atomic_write(path, format_text(message).encode("utf-8"))


def write_binary(message: Message, path: PathLike) -> Path:
    """Write `message` serialized, atomically."""
    return atomic_write(path, message.SerializeToString())


def atomic_write(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it normal modes
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_folder(final: PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `final`, then swap it in.

    Yields the temporary folder. When the block ends normally the folder and everything in it
    get the umask's modes (mkdtemp makes them private), an existing `final` is moved aside, the
    new folder renamed to `final` and the old one removed; when the block raises, the temporary
    folder is removed and `final` is untouched."""
    final = Path(final).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
        umask = _umask()
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
            final.rename(old / final.name)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_stale(final: Path) -> None:
    """Remove what a killed run (SIGKILL, power loss) left beside `final`: its `.tmp-PID-*`
    and `.old-PID-*` folders whose process no longer runs. Folders of live processes (another
    build of the same dataset right now) are left alone."""
    for kind in ("tmp", "old"):
        prefix = f".{final.name}.{kind}-"
        for leftover in final.parent.glob(f"{glob.escape(prefix)}*-*"):
            pid = leftover.name[len(prefix):].split("-")[0]
            if leftover.is_dir() and pid.isdigit() and not _running(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PrototxtError("no such file", path) from None
    except IsADirectoryError:
        raise PrototxtError("is a folder, not a file", path) from None
    except OSError as exc:
        raise PrototxtError(f"cannot read: {exc.strerror}", path) from None
