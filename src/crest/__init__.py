"""crest: cluster-guided cross-lingual safety guardrails, one reproducible pipeline."""

__version__ = "0.1.0"
