"""Generate the committed Python code for proto/edgekv/v1/*.proto.

Theory of operation: one command, pinned tools (grpcio-tools and mypy-protobuf
versions come from pyproject.toml's dev extra), deterministic output. The
generated modules land in edgekv/v1/, importable as ``edgekv.v1.<name>_pb2``.
``--check`` regenerates into a temporary folder and fails when the committed
files differ, which is how CI notices a proto edited without regenerating.

    python scripts/gen_proto.py          # regenerate edgekv/v1/
    python scripts/gen_proto.py --check  # exit 1 when edgekv/v1/ is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("edgekv") / "v1"
# mypy-protobuf's plugins are installed beside the interpreter that runs us.
BIN_DIR = Path(sys.executable).parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto; return the generated files relative to out_root."""
    protos = sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={BIN_DIR / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN_DIR / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    subprocess.run(command, check=True, cwd=ROOT)
    return sorted(
        p.relative_to(out_root)
        for p in (out_root / PACKAGE_DIR).iterdir()
        if p.name.endswith(GENERATED_SUFFIXES)
    )


def committed_files() -> list[Path]:
    return sorted(
        p.relative_to(ROOT)
        for p in (ROOT / PACKAGE_DIR).iterdir()
        if p.name.endswith(GENERATED_SUFFIXES)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when edgekv/v1 is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out_root = Path(tmp)
        (out_root / PACKAGE_DIR).mkdir(parents=True)
        fresh = generate(out_root)
        if args.check:
            stale = [str(p) for p in fresh if not (ROOT / p).exists()]
            stale += [
                str(p)
                for p in fresh
                if (ROOT / p).exists() and not filecmp.cmp(out_root / p, ROOT / p, shallow=False)
            ]
            stale += [str(p) for p in committed_files() if p not in fresh]
            if stale:
                print("generated code is stale; run `python scripts/gen_proto.py`:", *stale)
                return 1
            print(f"generated code is up to date ({len(fresh)} files)")
            return 0
        for old in committed_files():
            (ROOT / old).unlink()
        for path in fresh:
            shutil.copyfile(out_root / path, ROOT / path)
        print(f"wrote {len(fresh)} files to {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
