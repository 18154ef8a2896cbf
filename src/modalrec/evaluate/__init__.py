"""Full-ranking evaluation with masks, vectorised metrics, per-branch diagnostics."""

from modalrec.evaluate.metrics import metrics_from_hits
from modalrec.evaluate.ranking import RankingResult, evaluate_model, rank

__all__ = ["RankingResult", "evaluate_model", "metrics_from_hits", "rank"]
