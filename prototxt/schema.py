"""Our Caffe schema: where it lives and how caffe_pb2.py is generated from it.

`caffe.proto` is the source of truth; `caffe_pb2.py` is protoc's output for it, committed so that
users need no compiler. protoc (from grpcio-tools) stamps its own protobuf version into the module
and makes the runtime refuse older protobuf releases; that stamp is removed, because the rest of
the generated code (serialized descriptor + builder) runs on every protobuf from 4.25 on.
tests/prototxt/test_schema.py regenerates the descriptor and fails when the module is stale.

    python -m prototxt.schema --regenerate
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "caffe.proto"
MODULE = HERE / "caffe_pb2.py"

_VERSION_CHECK = re.compile(
    r"from google\.protobuf import runtime_version as _runtime_version\n"
    r"|_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n"
)


def is_repeated(field) -> bool:
    """Whether a FieldDescriptor is repeated (protobuf 7 removed `label`; 4.x lacks `is_repeated`)."""
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return field.label == field.LABEL_REPEATED


def run_protoc(args: list[str]) -> None:
    """Run protoc from grpcio-tools with the schema folder on the include path."""
    try:
        from grpc_tools import protoc  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("protoc is needed: pip install grpcio-tools") from exc
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", *args, str(PROTO)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed on {PROTO}:\n{proc.stderr}")


def descriptor_set_from_proto() -> bytes:
    """The FileDescriptorSet protoc compiles from caffe.proto now (serialized)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "caffe.desc"
        run_protoc([f"--descriptor_set_out={out}"])
        return out.read_bytes()


def generate_module_source() -> str:
    """caffe_pb2.py as protoc writes it, less the runtime version stamp."""
    with tempfile.TemporaryDirectory() as tmp:
        run_protoc([f"--python_out={tmp}"])
        src = (Path(tmp) / "caffe_pb2.py").read_text()
    return _VERSION_CHECK.sub("", src)


def regenerate() -> Path:
    """Write caffe_pb2.py next to caffe.proto (atomically)."""
    from .io import atomic_write  # io imports this module (is_repeated) at its top
    return atomic_write(MODULE, generate_module_source().encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prototxt.schema", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regenerate", action="store_true", help="rewrite caffe_pb2.py from caffe.proto")
    args = parser.parse_args(argv)
    if args.regenerate:
        print(f"wrote {regenerate()}")
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
