"""shotpass server: a frame-perfect render server for image passes over EXR shots."""

__version__ = "0.1.0"
