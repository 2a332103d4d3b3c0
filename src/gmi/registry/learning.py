"""A learned part of the hub (ridge, calibration) fails soft.

A learned part only refines the ranking: without the image-to-prompt ridge the interrogator
asks for uniform weights, without the prompt-to-visual ridge a stated prompt weighs points
uniformly. So a numerically unlucky hub (LAPACK's "SVD did not converge" on one ordinary
submission) degrades with one warning line on stderr and never takes identify, check or
serve down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np

logger = logging.getLogger("gmi")
LEARNING_ERRORS = (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError)
T = TypeVar("T")


def fitted_or_none(what: str, fit: Callable[[], T]) -> T | None:
    """fit(), or None with one warning line when it fails."""
    try:
        return fit()
    except LEARNING_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning(
            "gmi: the hub's %s could not be fitted (%s); using the unlearned path", what, reason
        )
        return None
