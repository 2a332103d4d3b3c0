"""gmi: Generative Model Identification.

Submit one image, find the generative models that make images like it.
"""

__version__ = "0.1.0"
