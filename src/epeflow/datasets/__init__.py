"""Datasets: list, check and split a dataset's frames into its manifest (`epeflow.artifacts.manifest`)."""

from epeflow.datasets.manifest import Manifest, build_manifest, run_manifest, write_manifest

__all__ = ["Manifest", "build_manifest", "run_manifest", "write_manifest"]
