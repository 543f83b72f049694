"""Evaluation and paper outputs: evaluation sets (benchmarks x languages, generated code-switched
sets), scoring of trained models and baseline guardrails, metrics with bootstrap intervals, paper
tables (CSV, Markdown, LaTeX), figures and the QC/provenance pages of the report. docs/evaluate.md."""

from crest.evaluate.metrics import EvaluationError, binary_metrics

__all__ = ["EvaluationError", "binary_metrics"]
