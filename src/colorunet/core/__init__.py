"""The foundations every other part builds on: colour maths, the quantiser, decoding, the networks and model files.

Nothing here imports from the rest of the package (the import direction is
apps → evaluation, inference, training, datasets → core).
"""
