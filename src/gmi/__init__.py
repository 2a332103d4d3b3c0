"""gmi: Generative Model Identification.

Submit one image, find the generative models that make images like it.
"""

import os

# OpenBLAS (numpy's, scipy's) keeps its worker threads spinning after each call; the encoder's
# torch threads then compete with them for the cores. Measured on the 2-core machine: one image
# end to end 115 ms with the default, 21 ms with threads that sleep at once (docs/performance.md);
# large exact scoring is unchanged. Effective only if numpy was not imported before gmi.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
