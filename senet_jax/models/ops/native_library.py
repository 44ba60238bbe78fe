"""Compiling C++ sources shipped with the package into a shared library, once per machine.

The CPU kernels that XLA cannot express well (models/ops/onednn.py) are C++ against
the XLA FFI headers that jaxlib ships. Building them on first use, as
torch.utils.cpp_extension does, keeps `pip install` pure-Python on every platform;
the library is cached under a key of everything that went into it, so a second
process, or a new version of jaxlib, the source or a flag, finds or rebuilds the
right one. Writes are atomic, so processes that race to build do not corrupt it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class BuildError(RuntimeError):
    """The library could not be built or loaded; the message says why in one line."""


def cache_dir() -> Path:
    """Where built libraries live: $XDG_CACHE_HOME/senet_jax/kernels (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "senet_jax" / "kernels"


def compiler() -> str:
    """The C++ compiler on PATH (g++, else c++, else clang++)."""
    for name in ("g++", "c++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    raise BuildError("no C++ compiler on PATH (install g++)")


def build(
    sources: Sequence[Path],
    name: str,
    include_dirs: Sequence[str | Path],
    library_files: Sequence[str | Path],
    flags: Sequence[str] = ("-std=c++17", "-O2"),
    extra_key: str = "",
) -> Path:
    """The path of `sources` compiled to lib{name}.so, building it unless the cache has it.

    library_files are linked by path, with their directories as the run-time search path.
    extra_key: versions of what the headers come from (so an upgrade rebuilds).
    """
    cxx = compiler()
    command = [cxx, *flags, "-shared", "-fPIC", "-w"]
    command += [f"-I{d}" for d in include_dirs]
    command += [str(source) for source in sources]
    for library in library_files:
        command += [str(library), f"-Wl,-rpath,{Path(library).parent}"]
    key = hashlib.sha256(
        "\0".join(
            [*(source.read_bytes().decode() for source in sources), *command, extra_key]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / key / f"lib{name}.so"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    except OSError as e:
        raise BuildError(
            f"cannot write the kernel cache {target.parent} ({e.strerror or e}); "
            "point XDG_CACHE_HOME at a writable folder"
        ) from None
    os.close(fd)
    try:
        done = subprocess.run(
            [*command, "-o", partial], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if " error: " in line]
            raise BuildError(
                f"compiling {', '.join(source.name for source in sources)} failed: "
                f"{(lines or done.stderr.splitlines() or ['?'])[0]}"
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target
