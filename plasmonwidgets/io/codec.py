"""Our metadata, encoded so that it round-trips exactly through .npz and HyperSpy files.

A JSON tree where numpy arrays are replaced by references into a flat table of arrays,
and non-JSON types (tuples, paths, dicts with non-string keys) are tagged.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..spectrum_image import SpectrumImage

GROUP = "plasmonwidgets"  # name of our group inside a HyperSpy signal's metadata
FORMAT_VERSION = 1
_TAGS = ("__ndarray__", "__tuple__", "__dict__", "__path__")


class Packer:
    """Encode metadata as JSON-able objects, collecting its numpy arrays in ``arrays``.

    Examples
    --------
    With ``raw_bytes=True`` (HDF5/zarr) 0-d and non-numeric arrays are kept as raw bytes.

    >>> import numpy as np
    >>> packer = Packer(raw_bytes=False)
    >>> encoded = packer.encode({"dose": np.float32(2.5), "roi": (1, 2)}, "metadata")
    >>> decode(encoded, packer.arrays)
    {'dose': np.float32(2.5), 'roi': (1, 2)}
    """
    def __init__(self, raw_bytes: bool):
        # HDF5/zarr cannot hold 0-d or string/datetime/structured arrays as HyperSpy
        # metadata, so for .hspy/.zspy those travel as raw bytes plus dtype and shape.
        self.raw_bytes = raw_bytes
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, arr: np.ndarray, where: str, scalar: bool = False) -> dict:
        if arr.dtype.hasobject:
            raise TypeError(
                f"{where} is a numpy array of Python objects, which cannot be saved; "
                "convert it to a numeric or string array, or to a list"
            )
        key = f"a{len(self.arrays)}"
        raw = self.raw_bytes and (arr.dtype.kind not in "biufc" or arr.ndim == 0)
        self.arrays[key] = (
            np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8) if raw else arr
        )
        return {"__ndarray__": key, "dtype": np.lib.format.dtype_to_descr(arr.dtype),
                "shape": list(arr.shape), "raw": bool(raw), "scalar": scalar}

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, str, int, float)):
            return obj
        if isinstance(obj, np.ndarray):
            return self.array(obj, where)
        if isinstance(obj, np.generic):
            return self.array(np.asarray(obj), where, scalar=True)
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, os.PathLike):
            return {"__path__": os.fspath(obj)}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
                return {k: self.encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
            return {"__dict__": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                 for k, v in obj.items()]}
        raise TypeError(
            f"{where} holds a {type(obj).__module__}.{type(obj).__name__}, which cannot be "
            "saved; use dicts, lists, tuples, numbers, strings, None or numpy arrays"
        )


def _as_tuples(descr: Any) -> Any:
    """JSON turns the tuples of a structured dtype description into lists; undo that."""
    if isinstance(descr, list):
        return [tuple(_as_tuples(d) for d in item) if isinstance(item, list) else item
                for item in descr]
    return descr


def decode(obj: Any, arrays: dict[str, Any]) -> Any:
    """Undo :meth:`Packer.encode`: rebuild arrays, tuples, paths and non-string keys.

    Examples
    --------
    >>> import numpy as np
    >>> packer = Packer(raw_bytes=True)
    >>> encoded = packer.encode({"energy": np.arange(3.0), 1: "one"}, "metadata")
    >>> decoded = decode(encoded, packer.arrays)
    >>> decoded["energy"], decoded[1]
    (array([0., 1., 2.]), 'one')
    """
    if isinstance(obj, list):
        return [decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__ndarray__" in obj:
        dtype = np.lib.format.descr_to_dtype(_as_tuples(obj["dtype"]))
        stored = np.asarray(arrays[obj["__ndarray__"]])
        if obj["raw"]:
            arr = np.frombuffer(stored.tobytes(), dtype=dtype).reshape(obj["shape"]).copy()
        else:
            arr = stored.astype(dtype, copy=False).reshape(obj["shape"])
        return arr[()] if obj["scalar"] else arr
    if "__tuple__" in obj:
        return tuple(decode(v, arrays) for v in obj["__tuple__"])
    if "__path__" in obj:
        return Path(obj["__path__"])
    if "__dict__" in obj:
        return {_freeze(decode(k, arrays)): decode(v, arrays) for k, v in obj["__dict__"]}
    return {k: decode(v, arrays) for k, v in obj.items()}


def _freeze(key: Any) -> Any:
    return key.item() if isinstance(key, np.ndarray) and key.ndim == 0 else key


def plain(obj: Any) -> Any:
    """Metadata read from a foreign file, reduced to types the codec can save.

    Examples
    --------
    >>> import pathlib
    >>> plain({"path": pathlib.Path("a.dm4"), 3: (1, 2)})
    {'path': 'a.dm4', '3': [1, 2]}
    """
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, str, int, float, np.generic)):
        return obj
    if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
        return obj
    return str(obj)


def encode_header(si: SpectrumImage, packer: Packer, with_metadata: bool = True) -> str:
    """JSON header with everything except the spectra and HAADF arrays.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import json
    >>> head = json.loads(encode_header(si, Packer(raw_bytes=False)))
    >>> head["scan_shape"], head["n_energy"]
    ([12, 12], 32)
    """
    norm = si.normalization
    head = {
        "format": "plasmonwidgets",
        "version": FORMAT_VERSION,
        "scan_shape": list(si.scan_shape),
        "n_energy": si.n_energy,
        "scale": si.scale,
        "pixel_size": si.pixel_size,
        "pixel_unit": si.pixel_unit,
        "energy": packer.array(np.asarray(si.energy), "energy"),
        "normalization": None if norm is None else {
            "mode": norm.mode,
            "offset": packer.array(np.asarray(norm.offset), "normalization offset"),
            "factor": packer.array(np.asarray(norm.factor), "normalization factor"),
        },
        "metadata": packer.encode(si.metadata if with_metadata else {}, "metadata"),
    }
    return json.dumps(head, ensure_ascii=False)


def crc(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order), to check data read back from a file.

    Examples
    --------
    >>> import numpy as np
    >>> crc(np.zeros(4, np.float32)) == crc(np.zeros(4, np.float32))
    True
    """
    return zlib.crc32(np.ascontiguousarray(array).data)
