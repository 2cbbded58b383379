"""The layerkit version, read by packaging and written into every checkpoint."""

__version__ = "0.1.0"
