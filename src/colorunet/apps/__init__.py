"""What a user runs: the command line, the web app, video, ONNX export and ``colorunet compare``.

Apps put the other parts together; nothing outside ``apps`` imports from here.
"""
