"""The error users see: a short message, no traceback."""


class ColorunetError(Exception):
    """An error the user can act on (bad file, bad option); its message names the culprit."""
