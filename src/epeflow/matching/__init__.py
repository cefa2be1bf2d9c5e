"""Matching of synthetic to real crops: k-NN in feature space (`knn`), distance filter (`filter`), coverage
weights (`coverage_weights`) and the report's pictures of matches (`preview`)."""

from epeflow.matching.coverage_weights import coverage_weights

__all__ = ["coverage_weights"]
