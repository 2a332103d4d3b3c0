"""Identification at hub scale: the packed (flat, contiguous) layout of all models' spec
points, the searcher seam that picks candidate models, and the ONE ranking core that the Hub,
the server and the benchmark all use (gmi.search.ranking)."""
