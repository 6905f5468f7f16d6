"""Gathering photos to train on: openly licensed sources (``colorunet data open-photos``), the filters a photo
must pass, and the reader for the rcc archive format."""
