"""The stricter promotion gate: pure rules, each with the sentence that says why it failed.

A candidate takes `@champion` only if every rule passes, all judged on the candidate's own
holdout (the test slice of its training run, where the champion and the baselines are scored on
the same rows):

1. `beats_champion`: ROC-AUC at most `promotion.max_auc_drop` below the champion's and a Brier
   score lower by more than `promotion.min_brier_gain` (training.registry.promotion_decision's
   rule; no champion yet passes).
2. `beats_best_baseline`: ROC-AUC above the best simple baseline's (pay on due date, the
   customer's historical delay, average days delinquent, the SAP-style rule strategy) by
   `monitoring.baseline_auc_margin`, and a Brier score below the best probabilistic baseline's.
3. `slice_floors`: every declared slice value (`monitoring.slice_columns`: segment, company code,
   new vs known customer, amount band) with at least `min_slice_rows_gate` known outcomes has a
   ROC-AUC at or above `slice_auc_floor` and an ECE at or below `slice_ece_ceiling`. Smaller
   slices are listed, not judged (a floor on twenty rows is noise).
4. `canary_passed`: the candidate, loaded through the serving path, scored a sample
   (serving.canary runs it; this module only reads its result, as training never imports
   serving).

`decide(rules)` folds them into a `GateDecision` whose `reason` names every failed rule;
training.pipeline records it on the registered version (tag `gate`) and moves the alias with
training.registry.apply_decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from features.config.monitoring import MonitoringConfig
from features.config.training import PromotionConfig


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{self.rule}: {'ok' if self.passed else 'FAILED'} ({self.detail})"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    rules: tuple[RuleResult, ...]

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    @property
    def reason(self) -> str:
        if self.promote:
            return "promoted: " + "; ".join(r.line() for r in self.rules)
        return "refused: " + "; ".join(r.line() for r in self.failed)


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def beats_champion(new: dict, champion: dict | None, cfg: PromotionConfig) -> RuleResult:
    if champion is None:
        return RuleResult("beats_champion", True, "no comparable champion")
    auc_ok = new["roc_auc"] >= champion["roc_auc"] - cfg.max_auc_drop
    brier_ok = new["brier"] < champion["brier"] - cfg.min_brier_gain
    return RuleResult("beats_champion", bool(auc_ok and brier_ok),
                      f"ROC-AUC {new['roc_auc']:.4f} vs champion {champion['roc_auc']:.4f} "
                      f"(allowed drop {cfg.max_auc_drop}); Brier {new['brier']:.5f} vs "
                      f"{champion['brier']:.5f} (required gain > {cfg.min_brier_gain})")


def beats_best_baseline(new: dict, baselines: dict[str, dict], margin: float = 0.0) -> RuleResult:
    """`baselines`: name -> {"roc_auc", "brier" (NaN for a pure ranking)} on the same rows."""
    aucs = {k: v["roc_auc"] for k, v in baselines.items() if _finite(v.get("roc_auc"))}
    briers = {k: v["brier"] for k, v in baselines.items() if _finite(v.get("brier"))}
    if not aucs:
        return RuleResult("beats_best_baseline", False, "no baseline scored on the holdout")
    best_auc = max(aucs, key=aucs.get)
    auc_ok = new["roc_auc"] > aucs[best_auc] + margin
    detail = (f"ROC-AUC {new['roc_auc']:.4f} vs best baseline {best_auc} {aucs[best_auc]:.4f} "
              f"(margin {margin})")
    brier_ok = True
    if briers:
        best_brier = min(briers, key=briers.get)
        brier_ok = new["brier"] < briers[best_brier]
        detail += f"; Brier {new['brier']:.5f} vs best {best_brier} {briers[best_brier]:.5f}"
    return RuleResult("beats_best_baseline", bool(auc_ok and brier_ok), detail)


def slice_floors(slices: pd.DataFrame, cfg: MonitoringConfig) -> RuleResult:
    """`slices`: the model's rows of the report's slice table (slice, value, n, roc_auc, ece)."""
    if slices is None or slices.empty:
        return RuleResult("slice_floors", True, "no slice table (nothing judged)")
    sl = slices[slices["slice"].isin(cfg.slice_columns)]
    judged = sl[sl["n"] >= cfg.min_slice_rows_gate]
    bad = []
    for _, r in judged.iterrows():
        if _finite(r.get("roc_auc")) and r["roc_auc"] < cfg.slice_auc_floor:
            bad.append(f"{r['slice']}={r['value']} ROC-AUC {r['roc_auc']:.3f} < "
                       f"{cfg.slice_auc_floor} (n={int(r['n'])})")
        if _finite(r.get("ece")) and r["ece"] > cfg.slice_ece_ceiling:
            bad.append(f"{r['slice']}={r['value']} ECE {r['ece']:.3f} > {cfg.slice_ece_ceiling} "
                       f"(n={int(r['n'])})")
    skipped = len(sl) - len(judged)
    detail = "; ".join(bad) if bad else f"{len(judged)} slice values at or above their floors"
    return RuleResult("slice_floors", not bad,
                      detail + (f"; {skipped} smaller than {cfg.min_slice_rows_gate} rows not "
                                "judged" if skipped else ""))


def canary_passed(canary: dict | None) -> RuleResult:
    """`canary`: serving.canary.run_canary's result ({"ok", "detail"}); None = not run."""
    if canary is None:
        return RuleResult("canary", False, "the canary was not run")
    return RuleResult("canary", bool(canary.get("ok")), str(canary.get("detail", "")))


def decide(rules: list[RuleResult] | tuple[RuleResult, ...]) -> GateDecision:
    rules = tuple(rules)
    return GateDecision(all(r.passed for r in rules), rules)


def report_baselines(scorers: pd.DataFrame) -> dict[str, dict]:
    """Baselines and the rule strategy of a report's scorer table (training.report)."""
    sc = scorers[scorers["kind"].isin(("baseline", "rule"))]
    return {str(r["scorer"]): {"roc_auc": float(r["roc_auc"]),
                               "brier": float(r["brier"]) if _finite(r.get("brier"))
                               else float("nan")} for _, r in sc.iterrows()}


def report_model(scorers: pd.DataFrame, model_name: str = "model") -> dict:
    row = scorers.set_index("scorer").loc[model_name]
    return {"roc_auc": float(row["roc_auc"]), "brier": float(row["brier"])}


def report_slices(slices: pd.DataFrame, model_name: str = "model") -> pd.DataFrame:
    return slices[slices["scorer"] == model_name] if len(slices) else slices


def strict_gate(scorers: pd.DataFrame, slices: pd.DataFrame, champion: dict | None,
                promotion: PromotionConfig, cfg: MonitoringConfig, canary: dict | None,
                model_name: str = "model") -> GateDecision:
    """Every rule of the module doc from a training report's tables (training.report
    .EvaluationReport.scorers / .slices), the champion's figures on the same rows and the
    canary's result."""
    new = report_model(scorers, model_name)
    return decide([
        beats_champion(new, champion, promotion),
        beats_best_baseline(new, report_baselines(scorers), cfg.baseline_auc_margin),
        slice_floors(report_slices(slices, model_name), cfg),
        canary_passed(canary),
    ])


__all__ = ["RuleResult", "GateDecision", "beats_champion", "beats_best_baseline",
           "slice_floors", "canary_passed", "decide", "strict_gate",
           "report_baselines", "report_model", "report_slices"]
