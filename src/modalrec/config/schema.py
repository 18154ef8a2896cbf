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
    normalize: Literal["none", "l2", "zscore"] = Field(
        "none", description="feature normalisation before training: none (as given), l2 rows, zscore columns"
    )


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
    # BR-MRS (objective=brmrs): L = chns_weight * L_chns + syn_weight * L_syn (+ bpr_weight * BPR(fused)), Eq. 5
    chns_weight: float = Field(1.0, ge=0, description="lambda_h: weight of the cross-modal hard-negative BPR (Eq. 2)")
    syn_weight: float = Field(1.0, ge=0, description="lambda_s: weight of the synergy-aware BPR (Eq. 4)")
    margin: float = Field(0.1, description="theta: the fused margin must beat the best modality's by this (Eq. 4)")
    pool_size: int = Field(16, ge=1, description="candidate negatives per positive for hard-negative mining")
    sampler: Literal["uniform", "fused_hard", "same_modality_hard", "chns", "chns_own"] = Field(
        "chns", description="negatives of the modality BPR terms: chns = cross-assigned (Eq. 2); others = Sec. 3.6"
    )
    chns_reduce: Literal["mean", "max"] = Field(
        "mean", description="M > 2 modalities: combine the OTHER branches' pool scores by mean or max before argmax"
    )


class StressConfig(Section):
    """Controlled corruptions applied to the data before training (trust paper, Sec. 3)."""

    feature_permute: dict[str, float] = Field(
        default_factory=dict,
        description="modality (or all) -> eta_m in [0, 0.5]: permute that fraction of feature rows (Eq. 2)",
    )
    edges: float = Field(
        0.0, ge=-1.0, le=1.0, description="eta_e: <0 deletes, >0 adds floor(|eta_e| |E_train|) random training edges"
    )
    seed: int = Field(0, description="seed of the corruptions")

    @field_validator("feature_permute")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {m: r for m, r in v.items() if not 0.0 <= r <= 1.0}
        if bad:
            raise ValueError(f"permutation ratios must lie in [0, 1] (the paper uses [0, 0.5]); got {bad}")
        return v


class RectifyConfig(Section):
    """Modality-level Rectification (trust paper, Sec. 4.2): offline feature repair before training."""

    enabled: bool = Field(False, description="rectify the (possibly corrupted) features before training")
    lam: float = Field(0.5, ge=0.0, le=1.0, description="diagonal prior mix lambda (Eq. 14)")
    tau: float = Field(0.1, gt=0.0, description="affinity temperature (Eq. 10)")
    k: int = Field(10, ge=1, description="top-K projected features kept per anchor (Eq. 10)")
    rho: float | None = Field(
        None, gt=0.0, le=1.0, description="small-loss keep ratio (Eq. 8); default eta_m + 0.05 if known, else 0.75"
    )
    no_sinkhorn: bool = Field(False, description="ablation w/o SINK: row-normalise the affinity instead")
    no_small_loss: bool = Field(False, description="ablation w/o SL: train the projection on the full batch")
    modalities: list[str] | None = Field(None, description="modalities to rectify (default: all)")
    anchor_epochs: int = Field(50, ge=1, description="epochs of the LightGCN anchor model")
    anchor_dim: int = Field(64, ge=1, description="anchor embedding size")
    anchor_layers: int = Field(3, ge=0, description="LightGCN layers of the anchor model")
    anchor_lr: float = Field(0.01, gt=0.0, description="Adam learning rate of the anchor model")
    proj_epochs: int = Field(50, ge=1, description="epochs of the projection training")
    proj_batch: int = Field(1024, ge=1, description="projection mini-batch size")
    proj_lr: float = Field(1e-3, gt=0.0, description="projection Adam learning rate")
    proj_weight_decay: float = Field(0.0, ge=0.0, description="L2 penalty on the projection weights")
    sinkhorn_iters: int = Field(1000, ge=1, description="maximum Sinkhorn-Knopp iterations")
    sinkhorn_tol: float = Field(1e-3, gt=0.0, description="stop when max |row/column sum - 1| falls below this")
    sinkhorn_eps: float = Field(1e-16, gt=0.0, description="epsilon in the Sinkhorn updates (Eq. 12)")
    seed: int = Field(0, description="seed of anchor and projection training")
    cache: bool = Field(True, description="cache anchors and rectified features by content hash")


class EditConfig(Section):
    """Collaborative-prior edge editing (trust paper, Sec. 5.2); evaluation keeps the original mask."""

    op: Literal["prune", "complete"] | None = Field(None, description="prune or complete the training edges")
    ratio: float = Field(0.05, gt=0.0, le=1.0, description="r: edges removed/added as a fraction of |E_train|")
    where: Literal["train", "graph", "both"] = Field(
        "train", description="train edits BPR positives, graph the propagation graph, both edits both"
    )
    k: int = Field(20, ge=1, description="per-user and per-item top-K non-edge candidates for completion")
    prior_epochs: int = Field(50, ge=1, description="epochs of the LightGCN prior")
    prior_dim: int = Field(64, ge=1, description="LightGCN prior embedding size")
    prior_lr: float = Field(0.01, gt=0.0, description="Adam learning rate of the LightGCN prior")
    seed: int = Field(0, description="seed of the LightGCN prior")
    cache: bool = Field(True, description="cache the prior by content hash")


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
    stress: StressConfig = Field(default_factory=StressConfig)
    rectify: RectifyConfig = Field(default_factory=RectifyConfig)
    edit: EditConfig = Field(default_factory=EditConfig)
    per_dataset: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="dataset name -> {dotted.key: value} applied for that dataset"
    )
