"""colorunet: automatic colorization of photographs with ColorUNet (arXiv 1811.03120).

    >>> import colorunet
    >>> colorunet.colorize("old.jpg").save("old_color.png")          # shipped model
    >>> model = colorunet.load_model("runs/mine")                     # or a .safetensors file
    >>> colorunet.colorize(img, model=model, temperature=0.6, mode="annealed")

The heavy modules (torch) load on first use, so ``import colorunet`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["colorize", "colorize_full", "load_model", "__version__"]

_LAZY = {
    "colorize": ("inference.pipeline", "colorize"),
    "colorize_full": ("inference.pipeline", "colorize_full"),
    "load_model": ("core.weights", "load_model"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'colorunet' has no attribute {name!r}")
