"""The training loop: BPR triples, one forward per step, validation-only early stopping, resume.

Randomness is derived from (seed, epoch), so a resumed run replays exactly the epochs an
uninterrupted run would have run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modalrec.config.schema import RunConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import TrainingError
from modalrec.evaluate.ranking import DotScorer, RankingResult, rank
from modalrec.models.base import Batch, Recommender, Representations
from modalrec.models.registry import build_model
from modalrec.objectives import NegativeSampler, build_objective
from modalrec.train.allocator import tune_allocator
from modalrec.train.rundir import RunDir

log = logging.getLogger("modalrec.train")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device={name!r} but no CUDA GPU is available; use device=cpu or device=auto")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


def rank_reps(
    reps: Representations,
    ds: Dataset,
    cfg: RunConfig,
    splits: tuple[str, ...],
    branch: str = "fused",
    keep_topk: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> RankingResult:
    """Full ranking with one branch's dot-product scores."""
    return rank(
        DotScorer(reps.all_users(branch), reps.all_items(branch)),
        ds,
        splits=splits,
        topk=cfg.eval.topk,
        metrics=cfg.eval.metrics,
        mmrec_compat=cfg.eval.mmrec_compat,
        batch_users=cfg.eval.batch_users,
        keep_topk=keep_topk,
        device=device,
        progress=progress,
    )


class Trainer:
    """Trains one model on one dataset according to a RunConfig."""

    def __init__(
        self,
        cfg: RunConfig,
        ds: Dataset,
        run_dir: RunDir | None = None,
        progress: bool = False,
        on_epoch_end: Callable[[int], None] | None = None,
    ):
        self.cfg, self.ds, self.run_dir, self.progress = cfg, ds, run_dir, progress
        self.on_epoch_end = on_epoch_end
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        tune_allocator()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.model: Recommender = build_model(cfg.model, ds, cfg.params, self.device)
        self.sampler = NegativeSampler(ds.train)
        self.objective = build_objective(cfg, self.model, ds, self.sampler)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        a, b = cfg.train.lr_decay
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda e: a ** (e / b))
        coo = ds.train.tocoo()
        self.users, self.items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.start_epoch = 0
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": -1, "valid": {}, "test": {}}
        self.bad_evals = 0
        self.train_seconds = 0.0
        self.best_state: dict[str, torch.Tensor] | None = None

    # -- checkpointing -------------------------------------------------------------------
    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": epoch,
            "best_score": float(self.best["score"]),
            "best_epoch": int(self.best["epoch"]),
            "best_valid": self.best["valid"],
            "best_test": self.best["test"],
            "bad_evals": self.bad_evals,
            "train_seconds": self.train_seconds,
        }

    def resume(self) -> None:
        """Continue from ``checkpoint/last.pt``."""
        assert self.run_dir is not None
        st = self.run_dir.load("last.pt")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.start_epoch = int(st["epoch"]) + 1
        self.best = {
            "score": st["best_score"],
            "epoch": st["best_epoch"],
            "valid": st["best_valid"],
            "test": st["best_test"],
        }
        self.bad_evals = int(st["bad_evals"])
        self.train_seconds = float(st["train_seconds"])
        self.run_dir.truncate_history(int(st["epoch"]))
        log.info("resuming after epoch %d (best epoch %d)", st["epoch"], st["best_epoch"])

    # -- loop ----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        rng = np.random.default_rng(epoch_seed(cfg.seed, epoch))
        torch.manual_seed(epoch_seed(cfg.seed, epoch) % 2**63)
        self.model.train()
        self.model.pre_epoch(epoch, rng)
        perm = rng.permutation(len(self.users))
        users, pos = self.users[perm], self.items[perm]
        neg = self.sampler.sample(users, rng)
        bs = cfg.train.batch_size
        n_steps = math.ceil(len(users) / bs)
        if cfg.train.max_steps_per_epoch:
            n_steps = min(n_steps, cfg.train.max_steps_per_epoch)
        totals: dict[str, float] = {}
        dev = self.device
        for step in range(n_steps):
            sl = slice(step * bs, (step + 1) * bs)
            batch = Batch(
                torch.from_numpy(users[sl]).to(dev),
                torch.from_numpy(pos[sl]).to(dev),
                torch.from_numpy(neg[sl]).to(dev),
            )
            self.objective.prepare(batch, rng)
            reps = self.model()
            terms = self.objective(reps, batch)
            terms.update(self.model.aux_losses(reps, batch))
            reg = self.model.reg_loss(reps, batch)
            if reg is not None:
                terms["reg"] = reg
            if not terms:
                raise TrainingError("the loss has no terms (all weights are 0); set loss weights or the objective")
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch} step {step} (terms: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                    + "); lower train.lr or check the features for extreme values"
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
            self.opt.step()
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach())
        self.sched.step()
        return {k: v / max(1, n_steps) for k, v in totals.items()}

    def evaluate(self, splits: tuple[str, ...] = ("valid", "test"), keep_topk: bool = False) -> RankingResult:
        """One forward in eval mode, then full ranking for the requested splits."""
        self.model.eval()
        with torch.no_grad():
            reps = self.model.ranking_representations()
        return rank_reps(reps, self.ds, self.cfg, splits, keep_topk=keep_topk, device=self.device)

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        metric = cfg.train.valid_metric
        epochs = range(self.start_epoch, cfg.train.epochs)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.train.epochs, initial=self.start_epoch, desc=f"{cfg.model}", unit="epoch")
        stopped_early = False
        for epoch in epochs:
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch)
            t_train = time.perf_counter() - t0
            self.train_seconds += t_train
            row: dict[str, Any] = {"epoch": epoch, "train_seconds": round(t_train, 4), **losses}
            if (epoch + 1) % cfg.train.eval_every == 0 or epoch == cfg.train.epochs - 1:
                t1 = time.perf_counter()
                self.model.eval()
                with torch.no_grad():
                    reps = self.model.ranking_representations()
                res = rank_reps(reps, self.ds, cfg, ("valid",), device=self.device)
                valid = res.metrics["valid"]
                if metric not in valid:
                    raise TrainingError(f"train.valid_metric={metric!r} is not computed; add its K to eval.topk")
                row["valid"] = valid
                if valid[metric] > self.best["score"]:
                    test = rank_reps(reps, self.ds, cfg, ("test",), device=self.device).metrics["test"]
                    self.best = {"score": valid[metric], "epoch": epoch, "valid": valid, "test": test}
                    self.bad_evals = 0
                    row["test"] = test
                    self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                    if self.run_dir is not None and cfg.train.checkpoint:
                        self.run_dir.save("best.pt", {"model": self.model.state_dict(), "epoch": epoch})
                else:
                    self.bad_evals += 1
                row["eval_seconds"] = round(time.perf_counter() - t1, 4)
                if bar is not None:
                    bar.set_postfix({metric: f"{valid[metric]:.4f}", "best": f"{self.best['score']:.4f}"})
            if self.run_dir is not None:
                self.run_dir.append_history(row)
                if cfg.train.checkpoint:
                    self.run_dir.save("last.pt", self._state(epoch))
            log.info(
                "epoch %d loss %.4f %s",
                epoch,
                losses.get("loss", float("nan")),
                f"valid {metric} {row['valid'][metric]:.4f}" if "valid" in row else "",
            )
            if bar is not None:
                bar.update(1)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch)
            if self.bad_evals >= cfg.train.patience:
                stopped_early = True
                log.info("early stop at epoch %d: no %s improvement for %d evaluations", epoch, metric, self.bad_evals)
                break
        if bar is not None:
            bar.close()
        return self.final_metrics(stopped_early)

    def final_metrics(self, stopped_early: bool) -> dict[str, Any]:
        return {
            "valid": self.best["valid"],
            "test": self.best["test"],
            "best_epoch": self.best["epoch"],
            "valid_metric": self.cfg.train.valid_metric,
            "stopped_early": stopped_early,
            "train_seconds": round(self.train_seconds, 3),
            "test_masking": "train" if self.cfg.eval.mmrec_compat else "train+valid",
        }

    def load_best(self) -> None:
        """Restore the best-validation weights (from disk when checkpointing)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.run_dir is not None and (self.run_dir.ckpt / "best.pt").exists():
            self.model.load_state_dict(self.run_dir.load("best.pt")["model"])
