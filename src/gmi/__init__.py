"""gmi: Generative Model Identification.

Submit one image, find the generative models that make images like it.
"""

import os

# OpenBLAS (numpy's, scipy's) keeps its worker threads spinning after each call; the encoder's
# torch threads then compete with them for the cores. Measured on the 2-core machine: one image
# end to end 115 ms with the default, 21 ms with threads that sleep at once (docs/performance.md);
# large exact scoring is unchanged. Effective only if numpy was not imported before gmi.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# MKL (torch's CPU matrix products: the prompt encoder, CLIP) sums in an order that depends on
# the thread count, so the same prompts gave other embedding bytes in a 1-thread Ray worker than
# in a 2-thread `gmi submit`. Strict conditional numerical reproducibility makes them equal at
# any thread count (measured: 1, 2, 4 threads identical; MiniLM speed unchanged, 21 vs 23 ms
# for 12 prompts), so a spec's bytes do not depend on where it was built (gmi.submit). MKL reads
# it at its first product: effective unless torch ran a matrix product before gmi was imported.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
