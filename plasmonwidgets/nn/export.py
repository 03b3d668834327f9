"""A model's decoder as a small, framework-free program (for decoding in the browser).

``decoder_program(model)`` returns ``(ops, weights)``: ``ops`` is a JSON-able list of
steps, ``weights`` one flat float32 array that the steps index into as
``[offset, length]``. Evaluated on a latent vector z (d,) the program gives exactly
``model.decode(z)`` in physical units (up to float32 rounding): the interpreter in
``widgets/static/browser_decoder.js`` runs it on every slider move without a round
trip to the kernel.

Steps (tensors are one sample, shaped (C, L) for spectra or (C, H, W) for tiles):

* ``linear``: ``x = W x + b`` on the flattened input (W: out × in, row-major).
* ``reshape``: to ``shape``.
* ``conv``: kernel-``k`` convolution, zero padding ``pad``, dilation ``dilation``,
  weights (cout, cin, k[, k]) row-major, then bias.
* ``leaky``: LeakyReLU with ``slope``.
* ``affine``: per-channel ``x·scale + shift`` (an eval-mode batch norm, folded).
* ``upsample2``: nearest-neighbour ×2 along both spatial axes.
* ``pyramid``: ``stages`` (lists of steps) applied in sequence; the result is the sum
  of every stage's output.
* ``squeeze``: drop the channel axis (C = 1).
* ``denormalize``: ``x·scale + offset`` (offset per output value).
* ``rotation_average``: average a tile over the 4 rotations about pixel (w//2, w//2),
  on the block starting at row/col ``start``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .blocks import DilatedPyramid
from .decoders import ImageDecoder, SpectrumDecoder
from .symmetry import probe_block_start

__all__ = ["decoder_program"]


class _Builder:
    """Collects weights into one flat float32 array while the steps are written."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.size = 0

    def add(self, tensor: torch.Tensor | np.ndarray) -> list[int]:
        arr = np.ascontiguousarray(
            tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor,
            dtype=np.float32,
        ).ravel()
        ref = [self.size, int(arr.size)]
        self.chunks.append(arr)
        self.size += arr.size
        return ref

    def steps(self, module: nn.Module) -> list[dict[str, Any]]:
        """Steps of a (nested) Sequential of convs, activations, batch norms, pyramids."""
        if isinstance(module, nn.Sequential):
            return [step for child in module for step in self.steps(child)]
        if isinstance(module, DilatedPyramid):
            return [{"op": "pyramid", "stages": [self.steps(s) for s in module.stages]}]
        if isinstance(module, nn.Linear):
            return [{"op": "linear", "in": module.in_features, "out": module.out_features,
                     "w": self.add(module.weight), "b": self.add(module.bias)}]
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            k, pad, dil = module.kernel_size[0], module.padding[0], module.dilation[0]
            if (len(set(module.kernel_size)) != 1 or len(set(module.dilation)) != 1
                    or module.stride != (1,) * len(module.stride) or module.groups != 1):
                raise ValueError(f"cannot export {module}: only square, stride-1 convolutions")
            return [{"op": "conv", "ndim": 2 if isinstance(module, nn.Conv2d) else 1,
                     "cin": module.in_channels, "cout": module.out_channels, "k": k,
                     "pad": int(pad), "dilation": int(dil),
                     "w": self.add(module.weight), "b": self.add(module.bias)}]
        if isinstance(module, nn.LeakyReLU):
            return [{"op": "leaky", "slope": float(module.negative_slope)}]
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale = module.weight / torch.sqrt(module.running_var + module.eps)
            shift = module.bias - module.running_mean * scale
            return [{"op": "affine", "scale": self.add(scale), "shift": self.add(shift)}]
        raise ValueError(f"cannot export a decoder containing {type(module).__name__}")


def decoder_program(model: Any) -> tuple[list[dict[str, Any]], np.ndarray]:
    """``(ops, weights)`` computing ``model.decode(z)`` for one latent vector z (d,).

    ``model``: an Im2Spec (output (E,)) or Spec2Im (output (w, w)). The weights are the
    model's current ones (read under ``model.lock``), batch norms in eval form; the layer
    order is the decoder's own (``export_parts``).

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> ops, weights = decoder_program(pw.Im2Spec(window=16, n_energy=100, latent_dim=2))
    >>> ops[0]["op"], weights.dtype
    ('linear', dtype('float32'))
    """
    dec = getattr(model, "decoder", None)
    if not isinstance(dec, (SpectrumDecoder, ImageDecoder)):
        raise TypeError(f"expected an Im2Spec or Spec2Im, got {type(model).__name__}")
    b = _Builder()
    with model.lock, torch.no_grad():
        ops: list[dict[str, Any]] = []
        for part in dec.export_parts():
            if isinstance(part, tuple):
                ops.append({"op": part[0], "shape": part[1]})
            elif isinstance(part, str):
                ops.append({"op": part})
            else:
                ops += b.steps(part)
        ops.append({"op": "squeeze"})
        ops.append({"op": "denormalize", "scale": float(model.y_scale),
                    "offset": b.add(model.y_offset)})
        if isinstance(dec, ImageDecoder) and model.config.get("symmetric"):
            ops.append({"op": "rotation_average", "start": probe_block_start(model.window)})
    weights = np.concatenate(b.chunks) if b.chunks else np.zeros(0, np.float32)
    return ops, weights
