"""Network building blocks shared by the im2spec / spec2im models."""

from .blocks import ConvBlock, DilatedPyramid

__all__ = ["ConvBlock", "DilatedPyramid"]
