"""Identification: one query's images -> the ranked models.

results   Match, Identification (the --json contract)
steps     each step alone: check_query, decode, read_metadata, encode, query_prompts,
          interrogate, point_weights, exact_matches, rank, matches
pipeline  IdentifyRequest, Components (what a Hub hands in), identify (the steps in order)
evidence  why a listed model ranked where it did (its closest spec images)
"""

from gmi.identify.results import PROMPT_SOURCES, Identification, Match

__all__ = ["PROMPT_SOURCES", "Identification", "Match"]
