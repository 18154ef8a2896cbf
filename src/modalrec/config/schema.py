"""The run configuration schema. Unknown keys are errors (``extra="forbid"``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    """Base for config sections: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the data comes from."""

    source: str = Field("synthetic:small", description="a folder in the MMRec layout or synthetic:PRESET")
    features: dict[str, str] | None = Field(
        None, description="modality -> .npy file name in the folder (default image_feat.npy, text_feat.npy)"
    )
    inter: str | None = Field(None, description="the .inter file name when the folder holds several")
    n_items: int | None = Field(None, description="number of items when trailing items have no interactions")
    seed: int = Field(0, description="seed of the synthetic generator (synthetic sources only)")


class TrainConfig(Section):
    """Optimisation and early stopping."""

    epochs: int = Field(1000, ge=1, description="maximum number of epochs")
    batch_size: int = Field(2048, ge=1, description="BPR triples per step")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay (most models use their own L2 rule)")
    lr_decay: tuple[float, float] = Field(
        (1.0, 50.0), description="[a, b]: lr multiplied by a**(epoch/b) (MMRec's learning_rate_scheduler)"
    )
    patience: int = Field(20, ge=1, description="stop after this many evaluations without improvement")
    eval_every: int = Field(1, ge=1, description="evaluate on validation every N epochs")
    valid_metric: str = Field("recall@20", description="metric used for early stopping and model selection")
    grad_clip: float | None = Field(None, description="clip the gradient norm to this value")
    checkpoint: bool = Field(True, description="write checkpoint/best.pt and checkpoint/last.pt")
    max_steps_per_epoch: int | None = Field(None, description="cap steps per epoch (smoke tests, benchmarks)")

    @field_validator("valid_metric")
    @classmethod
    def _metric_at_k(cls, v: str) -> str:
        name, _, k = v.partition("@")
        if name not in METRIC_NAMES or not k.isdigit():
            raise ValueError(f"expected one of {sorted(METRIC_NAMES)} followed by @K, e.g. recall@20; got {v!r}")
        return v


METRIC_NAMES = {"recall", "ndcg", "precision", "map", "hit"}


class EvalConfig(Section):
    """Full-ranking evaluation."""

    topk: list[int] = Field([10, 20], description="cut-offs K")
    metrics: list[str] = Field(["recall", "ndcg", "precision", "map", "hit"], description="metric names")
    mmrec_compat: bool = Field(
        False, description="reproduce MMRec: do NOT mask validation items when ranking for the test split"
    )
    batch_users: int | None = Field(None, description="users scored per batch (default: sized to memory)")
    save_topk: int = Field(0, ge=0, description="write each test user's top-K list to topk.tsv (0 = off)")

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METRIC_NAMES]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {sorted(METRIC_NAMES)}")
        return v

    @field_validator("topk")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("topk must be a non-empty list of positive integers")
        return sorted(set(v))


class LossConfig(Section):
    """Weights of the objective's terms (see ``modalrec.objectives``)."""

    bpr_weight: float | None = Field(
        None, description="weight of plain BPR on the fused score (default 1 for objective=bpr, 0 for brmrs)"
    )
    branch: str = Field("fused", description="branch scored by the plain BPR term")


class RunConfig(Section):
    """Everything that defines a run; its hash identifies the run."""

    model: str = Field("lightgcn", description="registered model name (see `modalrec models`)")
    data: DataConfig = Field(default_factory=DataConfig)
    seed: int = Field(0, description="seed for initialisation, sampling and dropout")
    device: Literal["auto", "cpu", "cuda"] | str = Field("auto", description="auto uses a GPU when present")
    threads: int | None = Field(None, description="torch CPU threads (default: all cores)")
    params: dict[str, Any] = Field(default_factory=dict, description="model hyper-parameters (params.NAME=...)")
    objective: str = Field("bpr", description="training objective: bpr, or brmrs (CHNS + synergy-aware BPR)")
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    per_dataset: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="dataset name -> {dotted.key: value} applied for that dataset"
    )
