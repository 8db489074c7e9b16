"""How prompts are scored (SPEC §4): the settings every scoring call shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoringConfig:
    """How prompts are scored: decoding, split, evaluation batch size."""

    decode: str  # rank | generate
    split: str  # test | validation
    eval_batch_size: int
    rank_score: str  # sum | mean
    invalid_predictions: str  # wrong | negative

    def options(self) -> dict:
        """The keyword arguments of `score_task` these settings give."""
        return {"decode": self.decode, "batch_size": self.eval_batch_size, "rank_score": self.rank_score,
                "invalid_predictions": self.invalid_predictions}
