"""Matching of synthetic to real crops: k-NN in feature space, distance filter, coverage weights, and
the weighted pair sampler training uses. Modules: knn / knn_store (faiss), filter, coverage_weights,
sampler, epe_compat (the reference's files), preview (report pictures)."""

from epeflow.matching.coverage_weights import coverage_weights
from epeflow.matching.sampler import WeightedPairSampler

__all__ = ["WeightedPairSampler", "coverage_weights"]
