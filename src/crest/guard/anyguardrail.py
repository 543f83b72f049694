"""A crest guard as an any-guardrail guardrail (mozilla-ai's unified `validate` interface).

    from crest.guard.anyguardrail import CrestGuardrail
    guardrail = CrestGuardrail("results/paper/models/crest/large/seed0")
    guardrail.validate("How do I make a pipe bomb?")        # GuardrailOutput(valid=False, score=0.98, ...)
    guardrail.validate([text_a, text_b])                    # one batched Guard.score call

It follows the package's `ThreeStageGuardrail` (preprocess -> inference -> postprocess): `valid` is
True when P(unsafe) is below the guard's threshold (its calibrated one unless given), `score` is
P(unsafe), and one category, "unsafe", carries the same score and verdict. Loading is crest's
(`Guard.from_pretrained`: safetensors only, local directory or hub id `org/name`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from any_guardrail.base import GuardrailOutput, ThreeStageGuardrail
from any_guardrail.taxonomy import BackendType, GuardrailCategory, GuardrailMetadata, GuardrailStage, OutputShape
from any_guardrail.types import CategoryResult, GuardrailInferenceOutput, GuardrailPreprocessOutput

from crest.guard.loading import check_threshold
from crest.guard.model import Guard

AnyDict = dict[str, Any]


class CrestGuardrail(ThreeStageGuardrail[AnyDict, AnyDict]):
    """Multilingual prompt-safety classifier (XLM-R, CREST cluster-guided training) giving P(unsafe)."""

    SUPPORTED_MODELS: ClassVar[list[str]] = []  # any crest model directory, or a hub id `org/name`
    METADATA: ClassVar[GuardrailMetadata] = GuardrailMetadata(
        description="Multilingual prompt-safety classifier (XLM-R, CREST cluster-guided training) giving P(unsafe).",
        display_name="CREST", categories=frozenset({GuardrailCategory.CONTENT_SAFETY}),
        primary_category=GuardrailCategory.CONTENT_SAFETY, stages=frozenset({GuardrailStage.INPUT}),
        output_shapes=frozenset({OutputShape.BINARY, OutputShape.SCORE}), backend=BackendType.LOCAL_ENCODER,
        multilingual=True, supports_batch=True, vendor="crest", default_license="see the model card (training data licenses)",
    )

    def __init__(self, model_id: str | Path | None = None, *, threshold: float | None = None, device: str = "auto",
                 guard: Guard | None = None, **guard_kwargs: Any) -> None:
        if guard is None:
            if model_id is None:
                raise ValueError("give model_id (a crest model directory or hub id) or a loaded guard")
            guard = Guard.from_pretrained(model_id, device=device, threshold=threshold, **guard_kwargs)
        elif threshold is not None:
            guard.threshold = check_threshold(threshold)
        self.guard = guard
        self.model_id = str(model_id) if model_id is not None else "crest"

    def _pre_processing(self, input_text: str) -> GuardrailPreprocessOutput[AnyDict]:
        if not isinstance(input_text, str):
            raise TypeError(f"validate() takes a string or a list of strings, got {type(input_text).__name__}")
        return GuardrailPreprocessOutput(data={"texts": [input_text]})

    def _inference(self, model_inputs: GuardrailPreprocessOutput[AnyDict]) -> GuardrailInferenceOutput[AnyDict]:
        return GuardrailInferenceOutput(data={"prob_unsafe": self.guard.score(model_inputs.data["texts"]).tolist()})

    def _post_processing(self, model_outputs: GuardrailInferenceOutput[AnyDict]) -> GuardrailOutput:
        return self._output(model_outputs.data["prob_unsafe"][0])

    def _validate_batch(self, input_texts: list[str], **kwargs: Any) -> list[GuardrailOutput]:
        """One Guard.score call for the whole list (length-sorted batches, sliding windows)."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        for text in input_texts:
            self._pre_processing(text)  # the same type check as one text
        return [self._output(float(p)) for p in self.guard.score(input_texts)]

    def _output(self, prob: float) -> GuardrailOutput:
        unsafe = prob >= self.guard.threshold
        return GuardrailOutput(valid=not unsafe, score=prob,
                               categories=[CategoryResult(name="unsafe", score=prob, triggered=unsafe)],
                               explanation=f"P(unsafe) {prob:.4f} {'>=' if unsafe else '<'} threshold "
                                           f"{self.guard.threshold:.4f}")
