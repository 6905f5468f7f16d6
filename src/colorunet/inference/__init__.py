"""How a photo is colorized: the one pipeline (predict → decode → refine → recombine), its backends
(PyTorch, ONNX Runtime), the working-size photo I/O, refinement with hints, and batches of files.

Importing this package (or ``onnx_backend``) does not import PyTorch.
"""
