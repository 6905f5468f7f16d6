"""The one thing that differs between ways of running the network: a backend.

A backend turns a working-size luma image into the network's output, and says
how to read that output; everything around it (reading the photo, the working
size, decoding, refinement, recombination) is the same code for every backend
(``pipeline``). Two implement it: ``core.weights.ColorModel`` (PyTorch) and
``onnx_backend.OnnxModel`` (ONNX Runtime, no PyTorch).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What the pipeline needs of a model."""

    #: "classification" (class logits, decoded with ``centers``) or "regression" (chroma itself).
    head: str
    #: "yuv" or "lab": the space of the luma the network sees and of the chroma it predicts.
    color_space: str

    @property
    def name(self) -> str: ...

    @property
    def temperature(self) -> float:
        """The annealed-mean temperature this model decodes at unless told otherwise."""
        ...

    @property
    def centers(self) -> np.ndarray | None:
        """(n, 2) chroma of each class; None for a regression model."""
        ...

    @property
    def prior(self) -> np.ndarray | None:
        """(n,) share of the training pixels in each class, P̂; None for a regression model
        (or an ONNX file exported without it)."""
        ...

    def scores(self, small: np.ndarray) -> np.ndarray:
        """(1, C, h, w) float32 network output for an (h, w) float32 working-size luma in [0, 1]:
        class logits (C = n) or chroma (C = 2, regression head)."""
        ...
