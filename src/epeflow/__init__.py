"""epeflow: Enhancing Photorealism Enhancement as a cached, resumable pipeline."""

__version__ = "0.1.0"
