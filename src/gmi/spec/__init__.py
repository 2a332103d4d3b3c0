"""Specification math: kernels, the reduced-set RKME builder, specs on disk, scoring."""

from gmi.spec.kernels import gaussian_kernel, median_heuristic_gamma, squared_distances
from gmi.spec.rkme import ReducedSet, build_reduced_set, mmd_squared
from gmi.spec.scoring import SpecStack, prompt_weights, score_queries
from gmi.spec.specification import Specification, build_specification

__all__ = [
    "ReducedSet",
    "SpecStack",
    "Specification",
    "build_reduced_set",
    "build_specification",
    "gaussian_kernel",
    "median_heuristic_gamma",
    "mmd_squared",
    "prompt_weights",
    "score_queries",
    "squared_distances",
]
