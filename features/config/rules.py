"""The SAP-style collection strategy (basic rules, collection rules, priorities) the model is
judged against and shown beside; stored in each model's contract."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.config.base import Section


class BasicRuleConfig(Section):
    """One condition on an open item or its customer (SAP: basic rule)."""

    name: str
    field: str  # a row column, or a derived one (see training.core.rules.DERIVED_FIELDS)
    op: Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in", "is_true", "is_false"]
    value: float | str | tuple[str, ...] | None = None
    description: str = ""


class CollectionRuleConfig(Section):
    """Basic rules that must all hold, worth `points` (SAP: collection rule in a strategy)."""

    name: str
    basic_rules: tuple[str, ...] = Field(min_length=1)
    points: float = Field(ge=0)
    # A collection rule (earlier in the strategy) or a basic rule that must hold for this rule to
    # be valuated at all (SAP: prerequisite of a rule in the strategy).
    prerequisite: str | None = None
    description: str = ""


class PriorityConfig(Section):
    name: str
    min_percent: float = Field(ge=0, le=100)


def _default_basic_rules() -> tuple[BasicRuleConfig, ...]:
    b = BasicRuleConfig
    return (
        b(name="B01", field="days_overdue", op=">", value=0, description="item is overdue"),
        b(name="B02", field="days_overdue", op=">", value=30,
          description="item more than 30 days overdue"),
        b(name="B03", field="open_amount", op=">", value=10_000,
          description="open amount of the item above 10,000"),
        b(name="B04", field="customer_overdue_amount", op=">", value=50_000,
          description="customer's overdue amount above 50,000"),
        b(name="B05", field="risk_category", op="in", value=("D04", "E05"),
          description="customer in a high risk category"),
        b(name="B06", field="dunning_level", op=">=", value=3,
          description="item at dunning level 3 or more"),
        b(name="B07", field="n_promises_broken", op=">=", value=1,
          description="a promise to pay on the item was broken"),
        b(name="B08", field="dispute_open", op="is_false", description="no open dispute"),
        b(name="B09", field="hist_n_cleared", op=">=", value=3,
          description="customer has at least 3 paid invoices"),
        b(name="B10", field="hist_late_ratio", op=">", value=0.5,
          description="customer paid more than half of its invoices late"),
    )


def _default_collection_rules() -> tuple[CollectionRuleConfig, ...]:
    c = CollectionRuleConfig
    return (
        c(name="R01", basic_rules=("B01",), points=10, description="Item overdue"),
        c(name="R02", basic_rules=("B02",), points=15, description="Item > 30 days overdue"),
        c(name="R03", basic_rules=("B04",), points=20,
          description="Customer owes > 50,000 overdue"),
        c(name="R04", basic_rules=("B05",), points=15, description="High risk category"),
        c(name="R05", basic_rules=("B07",), points=15, description="Broken promise to pay"),
        c(name="R06", basic_rules=("B06", "B08"), points=10,
          description="Dunning level >= 3 and not in dispute"),
        c(name="R07", basic_rules=("B10",), points=10, prerequisite="B09",
          description="Habitual late payer (only judged with >= 3 paid invoices)"),
        c(name="R08", basic_rules=("B03",), points=5, prerequisite="R01",
          description="Large item (only when overdue)"),
    )


class RuleStrategyConfig(Section):
    """The SAP collection strategy (basic rules, valuation points, priorities); see
    training/core/rules.py for the default's story."""

    name: str = "PD_DEFAULT"
    basic_rules: tuple[BasicRuleConfig, ...] = Field(default_factory=_default_basic_rules)
    collection_rules: tuple[CollectionRuleConfig, ...] = Field(
        default_factory=_default_collection_rules)
    # Percentage of the maximum attainable points from which a priority applies (highest first).
    priorities: tuple[PriorityConfig, ...] = (
        PriorityConfig(name="very_high", min_percent=80),
        PriorityConfig(name="high", min_percent=60),
        PriorityConfig(name="medium", min_percent=30),
        PriorityConfig(name="low", min_percent=0),
    )
    max_points: float | None = Field(None, gt=0)  # None = sum of all collection rules' points
    # Rows sharing these keys are one customer's worklist at one time (customer-level fields).
    customer_group_keys: tuple[str, ...] = ("customer_id", "snapshot_time")


