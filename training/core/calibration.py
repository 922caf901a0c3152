"""`Calibrator`: the map from the risk booster's raw probability to a calibrated P(late).

Fitted by training.risk.fit_calibrator on out-of-time predictions; stored in bundle.json as its
parameters (isotonic knots, Platt coefficients), never pickled. Isotonic knots are strictly
increasing between the first and the last, and `apply` interpolates between them, so a monotone
booster stays monotone after calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("identity", "platt", "isotonic")
_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    method: str  # identity | platt | isotonic
    n: int  # calibration rows it was fitted on
    a: float | None = None  # platt: sigmoid(a * logit(raw) + b)
    b: float | None = None
    x: tuple[float, ...] = ()  # isotonic knots: raw score -> calibrated probability
    y: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibrator method {self.method!r}")
        if self.method == "platt" and (self.a is None or self.b is None):
            raise ValueError("a Platt calibrator needs a and b")
        if self.method == "isotonic" and (not self.x or len(self.x) != len(self.y)):
            raise ValueError("an isotonic calibrator needs as many x as y knots (at least one)")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * logit(raw) + self.b)))
        if self.method == "isotonic":
            return np.interp(raw, np.asarray(self.x), np.asarray(self.y))
        return raw

    def to_dict(self) -> dict:
        out: dict = {"method": self.method, "n": self.n}
        if self.method == "platt":
            out |= {"a": self.a, "b": self.b}
        if self.method == "isotonic":
            out |= {"x": list(self.x), "y": list(self.y)}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls(method=d["method"], n=int(d["n"]),
                   a=None if d.get("a") is None else float(d["a"]),
                   b=None if d.get("b") is None else float(d["b"]),
                   x=tuple(float(v) for v in d.get("x", ())),
                   y=tuple(float(v) for v in d.get("y", ())))


def apply_calibrator(cal: Calibrator, raw: np.ndarray) -> np.ndarray:
    return cal.apply(raw)


__all__ = ["Calibrator", "apply_calibrator", "logit", "METHODS"]
