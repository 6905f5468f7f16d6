"""The web app and HTTP API (``colorunet serve``); needs the ``web`` extra."""
