"""The networks behind the im2spec / spec2im models: blocks, encoders, decoders, export.

``nn`` knows nothing of :mod:`plasmonwidgets.models`: the models assemble an encoder and
a decoder from here, and :mod:`~plasmonwidgets.nn.export` reads a decoder's own layer list.
"""

from .blocks import ConvBlock, DilatedPyramid
from .decoders import ImageDecoder, SpectrumDecoder
from .encoders import ImageEncoder, SpectrumEncoder

__all__ = ["ConvBlock", "DilatedPyramid", "ImageDecoder", "ImageEncoder", "SpectrumDecoder",
           "SpectrumEncoder"]
