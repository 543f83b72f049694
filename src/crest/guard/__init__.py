"""Use a trained guardrail: score and classify texts, calibrate its threshold."""

from crest.guard.calibrate import calibrate_threshold, save_threshold
from crest.guard.model import Guard

__all__ = ["Guard", "calibrate_threshold", "save_threshold"]
