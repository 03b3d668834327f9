"""The plasmonwidgets .npz format: plain arrays plus a JSON header, read without pickle."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..spectrum_image import Normalization, SpectrumImage
from .codec import FORMAT_VERSION, Packer, decode, encode_header
from .errors import DataFileError


def read_npz(p: Path) -> SpectrumImage:
    """The SpectrumImage in a .npz written by :func:`write_npz`; anything else is a DataFileError.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.npz"
    >>> write_npz(si, path)
    >>> read_npz(path).spectra.shape
    (12, 12, 32)
    """
    if not zipfile.is_zipfile(p):
        raise DataFileError(
            f"Cannot read {str(p)!r}: it is not a NumPy .npz archive (no zip directory found; "
            "it may be truncated or another kind of file renamed .npz). Save it again with "
            "si.save(...).")
    try:
        with np.load(p, allow_pickle=False) as z:
            names = set(z.files)
            missing = {"header", "spectra", "haadf"} - names
            if missing:
                raise DataFileError(
                    f"{str(p)!r} is a .npz but not a plasmonwidgets spectrum image (missing "
                    f"{', '.join(sorted(missing))}; it holds {', '.join(sorted(names)) or 'nothing'}"
                    "). Build one with SpectrumImage(spectra, energy, haadf) and save it.")
            head = json.loads(str(z["header"]))
            if head.get("format") != "plasmonwidgets":
                raise DataFileError(f"{str(p)!r}: header is not a plasmonwidgets header.")
            if head.get("version", 0) > FORMAT_VERSION:
                raise DataFileError(f"{str(p)!r} was written by a newer plasmonwidgets (format "
                                    f"{head['version']}); upgrade plasmonwidgets to read it.")
            arrays = {k[4:]: z[k] for k in names if k.startswith("aux_")}
            spectra, haadf = z["spectra"], z["haadf"]
    except DataFileError:
        raise
    except Exception as exc:  # BadZipFile (bad CRC), pickled arrays, damaged members
        raise DataFileError(
            f"Cannot read {str(p)!r} as a plasmonwidgets .npz: {type(exc).__name__}: {exc}. "
            "The file is damaged or was not written by plasmonwidgets; save it again.") from exc
    try:
        head = decode(head, arrays)
        norm = head["normalization"]
        return SpectrumImage(
            spectra, head["energy"], haadf, scale=head["scale"], pixel_size=head["pixel_size"],
            pixel_unit=head["pixel_unit"], metadata=head["metadata"],
            normalization=None if norm is None else Normalization(
                norm["mode"], norm["offset"], norm["factor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"{str(p)!r}: inconsistent plasmonwidgets .npz ({exc}); save it "
                            "again.") from exc


def write_npz(si: SpectrumImage, tmp: Path) -> None:
    """Write ``si`` to ``tmp`` as spectra, HAADF, a JSON header and its arrays (no pickles).

    Examples
    --------
    Called by :func:`plasmonwidgets.io.save` with a temporary path it then moves into place:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.npz"
    >>> write_npz(si, path)
    >>> path.stat().st_size > 0
    True
    """
    packer = Packer(raw_bytes=False)
    header = encode_header(si, packer)
    arrays = {f"aux_{k}": v for k, v in packer.arrays.items()}
    with open(tmp, "wb") as f:
        np.savez(f, header=np.array(header), spectra=np.asarray(si.spectra), haadf=si.haadf,
                 **arrays)
        f.flush()
        os.fsync(f.fileno())
