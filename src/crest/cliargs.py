"""Argument types the stage CLIs share (rules pass config sections as JSON)."""

from __future__ import annotations

import argparse
import json


def json_object(text: str) -> dict:
    """argparse type: a JSON object (a rule's `params` rendered with json.dumps)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value
