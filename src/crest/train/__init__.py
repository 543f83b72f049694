"""Stage 5, fine-tuning: XLM-R safe/unsafe classifiers per experiment arm x encoder size x seed.

    arms.py      which languages an arm trains on
    plan.py      the jobs a config runs, their settings and input files; config checks
    dataset.py   an arm's rows from the translated shards (checked, balanced, stratified) + provenance
    batching.py  length-bucketed token-budget batches, sharded over DDP ranks
    trainer.py   the Accelerate training loop: bf16 on GPU, early stopping, exact resume
    card.py      the exported model directory and its model card

See docs/train.md."""

from crest.train.arms import ArmContext, arm_languages
from crest.train.dataset import build_arm_dataset
from crest.train.plan import check_train, job_settings, train_jobs

__all__ = ["ArmContext", "arm_languages", "build_arm_dataset", "check_train", "job_settings", "train_jobs"]
