"""ndarray <-> binary buffer helpers for widget traits.

Arrays travel to the browser as raw little-endian float32 bytes in a
``traitlets.Bytes`` trait (ipywidgets sends ``bytes`` values as binary message
buffers, never as JSON), with the shape in a separate ``List`` trait. The
browser views the buffer as a ``Float32Array`` without parsing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["array_to_buffer", "buffer_to_array", "as_float_array"]

_WIRE_DTYPE = np.dtype("<f4")


def as_float_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``value`` as a C-contiguous float32 array, with clear errors for bad input.

    NaN/Inf are kept (the widgets draw them transparent); non-numeric dtypes,
    wrong dimensionality and empty arrays raise.

    Examples
    --------
    >>> as_float_array([[1, 2], [3, 4]], "haadf", ndim=2).dtype
    dtype('float32')
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=np.float32)


def array_to_buffer(value: Any, name: str = "array", ndim: int | None = None):
    """(bytes, shape list) for a numeric array, as float32 little-endian.

    The bytes are ``H*W*4`` long for an (H, W) array, row-major.

    Examples
    --------
    A (2, 3) array becomes 2 * 3 * 4 = 24 bytes and its shape:

    >>> import numpy as np
    >>> data, shape = array_to_buffer(np.ones((2, 3)), "tile", ndim=2)
    >>> len(data), shape
    (24, [2, 3])
    """
    arr = as_float_array(value, name, ndim)
    return arr.astype(_WIRE_DTYPE, copy=False).tobytes(), [int(n) for n in arr.shape]


def buffer_to_array(buffer: bytes | memoryview | bytearray, shape) -> np.ndarray:
    """The float32 array of ``shape`` held by ``buffer`` (a read-only view, no copy).

    Raises ValueError when the buffer length does not match the shape.

    Examples
    --------
    >>> import numpy as np
    >>> data, shape = array_to_buffer(np.arange(6.0).reshape(2, 3))
    >>> buffer_to_array(data, shape)
    array([[0., 1., 2.],
           [3., 4., 5.]], dtype=float32)
    """
    shape = tuple(int(n) for n in shape)
    expected = int(np.prod(shape)) * _WIRE_DTYPE.itemsize
    if len(memoryview(buffer).cast("B")) != expected:
        raise ValueError(
            f"buffer holds {len(memoryview(buffer).cast('B'))} bytes but shape {shape} "
            f"needs {expected} float32 bytes"
        )
    return np.frombuffer(buffer, dtype=_WIRE_DTYPE).reshape(shape)
