"""Convolutions on CPU as oneDNN calls from XLA (the "onednn" formulation).

XLA:CPU has no fast direct convolution for training: its own is slow, and im2col +
matmul (the "matmul" formulation) writes every patch to memory, which costs ResNets
a fifth of their step. oneDNN, the library PyTorch uses on CPU, convolves in place
from NHWC. onednn_conv.cc wraps its forward, input-gradient and kernel-gradient
primitives for k x k convolutions, and onednn_matmul.cc its matrix products (matmul
primitive, sgemm) for the 1x1s, as XLA FFI handlers. This module builds that library on
first use (native_library.py), registers the handlers, and ties each pair of forward
and gradients together with a custom VJP.

float32 only. Where oneDNN or a compiler is missing (non-x86 machines, say),
`available()` is False, `unavailable_reason()` says why and "auto" picks "matmul".
"""

from __future__ import annotations

import ctypes
import functools
import threading
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from senet_jax.models.ops import native_library

SOURCES = tuple(Path(__file__).with_name(name) for name in ("onednn_conv.cc", "onednn_matmul.cc"))
# The pip packages that carry oneDNN's library (OpenMP build) and its headers.
RUNTIME_PACKAGE, HEADERS_PACKAGE = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"
# FFI target name -> the handler's symbol in the library.
TARGETS = {
    "senet_onednn_conv_forward": "SenetConvForward",
    "senet_onednn_conv_kernel_grad": "SenetConvKernelGrad",
    "senet_onednn_conv_grads": "SenetConvGrads",
    "senet_onednn_matmul": "SenetMatmul",
    "senet_onednn_matmul_grads": "SenetMatmulGrads",
}

_lock = threading.Lock()
_outcome: dict[str, object] = {}  # "library" (the loaded CDLL) or "error" (its one-line reason)


def _onednn_paths() -> tuple[Path, Path, str]:
    """(libdnnl.so.3, the include directory, the version), from the installed packages."""
    try:
        runtime = metadata.distribution(RUNTIME_PACKAGE)
        headers = metadata.distribution(HEADERS_PACKAGE)
    except metadata.PackageNotFoundError as e:
        raise native_library.BuildError(
            f"oneDNN is not installed: pip install {RUNTIME_PACKAGE} {HEADERS_PACKAGE} "
            f"(x86-64 Linux wheels; {e})"
        ) from None
    library = next((f for f in runtime.files or () if f.name == "libdnnl.so.3"), None)
    header = next(
        (f for f in headers.files or () if f.as_posix().endswith("include/oneapi/dnnl/dnnl.hpp")),
        None,
    )
    if library is None or header is None:
        raise native_library.BuildError(
            f"{RUNTIME_PACKAGE}/{HEADERS_PACKAGE} lack libdnnl.so.3 or oneapi/dnnl/dnnl.hpp"
        )
    include = Path(headers.locate_file(header)).resolve().parents[2]
    return Path(runtime.locate_file(library)).resolve(), include, runtime.version


def _load() -> ctypes.CDLL:
    """Builds (or finds in the cache), loads and registers the library; raises BuildError."""
    library, include, version = _onednn_paths()
    path = native_library.build(
        SOURCES,
        "senet_onednn",
        include_dirs=[include, jax.ffi.include_dir()],
        library_files=[library],
        flags=("-std=c++17", "-O2"),
        extra_key=f"onednn {version} jaxlib {jax.lib.__version__}",
    )
    try:
        handle = ctypes.CDLL(str(path))
        capsules = {target: jax.ffi.pycapsule(getattr(handle, s)) for target, s in TARGETS.items()}
    except (OSError, AttributeError) as e:
        raise native_library.BuildError(f"loading {path} failed: {e}") from None
    for target, capsule in capsules.items():
        jax.ffi.register_ffi_target(target, capsule, platform="cpu")
    return handle


def _library() -> ctypes.CDLL | None:
    with _lock:
        if not _outcome:
            try:
                _outcome["library"] = _load()
            except native_library.BuildError as e:
                _outcome["error"] = str(e)
    return _outcome.get("library")


def available() -> bool:
    """Whether the oneDNN convolutions can run here (builds the library the first time)."""
    return _library() is not None


def unavailable_reason() -> str | None:
    """Why they cannot (one line), or None when they can."""
    _library()
    return _outcome.get("error")


def _attributes(strides, padding) -> dict[str, np.int64]:
    (sh, sw), ((top, bottom), (left, right)) = strides, padding
    values = (sh, sw, top, bottom, left, right)
    names = ("stride_h", "stride_w", "pad_top", "pad_bottom", "pad_left", "pad_right")
    return {name: np.int64(v) for name, v in zip(names, values)}


def _ffi(target: str, results):
    if not available():
        raise RuntimeError(f"oneDNN convolutions are unavailable: {unavailable_reason()}")
    return jax.ffi.ffi_call(target, results, vmap_method="sequential")


def _call(target: str, shape, a, b, strides, padding):
    """The FFI target on float32 operands a, b, returning a float32 array of `shape`."""
    result = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    return _ffi(target, result)(a, b, **_attributes(strides, padding))


def output_shape(x_shape, kernel_shape, strides, padding) -> tuple[int, int, int, int]:
    (n, h, w, _), (kh, kw, _, f) = x_shape, kernel_shape
    ho = (h + sum(padding[0]) - kh) // strides[0] + 1
    wo = (w + sum(padding[1]) - kw) // strides[1] + 1
    return n, ho, wo, f


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, strides, padding) -> jnp.ndarray:
    """NHWC x HWIO -> NHWC, float32; strides (sh, sw), padding ((top, bottom), (left, right)).

    A strided 1x1 convolution reads every sh-th row and sw-th column only, so those are
    sliced out first and the convolution runs at stride 1: oneDNN's own strided 1x1 path gave
    wrong values now and then on an AMD EPYC host while two processes ran it."""
    if tuple(kernel.shape[:2]) == (1, 1) and tuple(strides) != (1, 1):
        if any(sum(p) for p in padding):
            x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
        x = x[:, :: strides[0], :: strides[1], :]
        return _direct_conv2d(x, kernel, (1, 1), ((0, 0), (0, 0)))
    return _direct_conv2d(x, kernel, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _direct_conv2d(x: jnp.ndarray, kernel: jnp.ndarray, strides, padding) -> jnp.ndarray:
    shape = output_shape(x.shape, kernel.shape, strides, padding)
    return _call("senet_onednn_conv_forward", shape, x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
    # symbolic_zeros: x.perturbed is False where no gradient reaches the input (a stem's
    # image). The residuals' length records it, as residuals can only hold arrays.
    y = _direct_conv2d(x.value, kernel.value, strides, padding)
    residuals = (x.value, kernel.value) if x.perturbed else (x.value, kernel.value, None)
    return y, residuals


def _conv2d_bwd(strides, padding, residuals, dy):
    x, kernel = residuals[:2]
    if len(residuals) == 3:  # the input is a constant: only the kernel's gradient is wanted
        dk = _call("senet_onednn_conv_kernel_grad", kernel.shape, x, dy, strides, padding)
        return None, dk
    # One call for both gradients: as two, XLA could run them at once and their oneDNN
    # thread teams would contend for the same cores (benchmarks/RESULTS.md).
    results = (
        jax.ShapeDtypeStruct(x.shape, jnp.float32),
        jax.ShapeDtypeStruct(kernel.shape, jnp.float32),
    )
    dx, dk = _ffi("senet_onednn_conv_grads", results)(
        x, dy, kernel, **_attributes(strides, padding)
    )
    return dx, dk


_direct_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd, symbolic_zeros=True)


def _product(a, b, transpose_a=False, transpose_b=False):
    m = a.shape[1] if transpose_a else a.shape[0]
    n = b.shape[0] if transpose_b else b.shape[1]
    result = jax.ShapeDtypeStruct((m, n), jnp.float32)
    return _ffi("senet_onednn_matmul", result)(
        a, b, transpose_a=np.bool_(transpose_a), transpose_b=np.bool_(transpose_b)
    )


@jax.custom_vjp
def matmul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """[m, k] x [k, n] -> [m, n], float32, through oneDNN (onednn_matmul.cc): a 1x1 convolution."""
    return _product(a, b)


def _matmul_fwd(a, b):
    # symbolic_zeros: keep what each wanted gradient needs, a for b's and b for a's.
    residuals = (a.value if b.perturbed else None, b.value if a.perturbed else None)
    return matmul(a.value, b.value), residuals


def _matmul_bwd(residuals, dc):
    a, b = residuals
    if a is not None and b is not None:  # both in one call, as in _conv2d_bwd
        results = (
            jax.ShapeDtypeStruct((dc.shape[0], b.shape[0]), jnp.float32),
            jax.ShapeDtypeStruct(b.shape, jnp.float32),
        )
        return tuple(_ffi("senet_onednn_matmul_grads", results)(a, b, dc))
    da = None if b is None else _product(dc, b, transpose_b=True)
    db = None if a is None else _product(a, dc, transpose_a=True)
    return da, db


matmul.defvjp(_matmul_fwd, _matmul_bwd, symbolic_zeros=True)
