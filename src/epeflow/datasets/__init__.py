"""Datasets: the embedded demo generator and the per-dataset manifest every later stage indexes by."""

from epeflow.datasets.demo import generate_demo
from epeflow.datasets.manifest import MANIFEST_COLUMNS, Manifest, build_manifest, load_manifest, write_manifest

__all__ = ["MANIFEST_COLUMNS", "Manifest", "build_manifest", "generate_demo", "load_manifest", "write_manifest"]
