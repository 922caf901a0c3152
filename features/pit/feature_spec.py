"""The feature catalogue: every model feature with its meaning, source and explanation sentence.

Training reads names, kinds and monotone directions from here; serving turns SHAP contributions
into collector-readable reasons with `sentence` (a str.format template: {value} is the feature's
value, other {name} placeholders are features of the same row; `sentence_false` is used instead
for a bool feature that is False). The data dictionary is generated from this file.

Monotone: +1 means more of the feature should never lower late-payment risk; it becomes a LightGBM
monotone constraint. Categoricals are always 0 (LightGBM aborts otherwise). Every measure of how
late the customer has paid (ratios, mean / recent / seasonal days late) is +1: a domain prior
that keeps a small data set's trees from learning that a worse payment record means less risk.

History features exist per window of config.history_windows_days; FEATURES is the catalogue for
the default windows, `feature_specs(config)` for any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from features import schema
from features.config.features import FeatureConfig

A = schema.Activity
# 1.1: recency, season and relative-amount history; 1.2: seasonal late share clipped to [0, 1];
# 1.3: history in the customer's current segment; 1.4: season effect and amplitude.
FEATURE_SET_VERSION = "pit-1.4"

KINDS = ("numeric", "categorical", "bool")
GROUPS = ("invoice", "collection", "dispute", "master", "history")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # "numeric" | "categorical" | "bool"
    group: str  # "invoice" | "collection" | "dispute" | "master" | "history"
    description: str
    source_activities: tuple[str, ...]
    sap_field: str | None
    monotone: int  # +1 / 0 / -1 direction of late-payment risk
    unit: str
    sentence: str
    sentence_false: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name}: kind {self.kind!r} not in {KINDS}")
        if self.group not in GROUPS:
            raise ValueError(f"feature {self.name}: group {self.group!r} not in {GROUPS}")
        if self.monotone not in (-1, 0, 1):
            raise ValueError(f"feature {self.name}: monotone must be -1, 0 or +1")
        if self.kind == "categorical" and self.monotone != 0:
            raise ValueError(f"feature {self.name}: a categorical feature cannot be monotone")


_POST = (A.INVOICE_POSTED.value,)
_PAY = (A.INCOMING_PAYMENT_POSTED.value,)
_OPEN_AMOUNT_SOURCES = (A.INVOICE_POSTED.value, A.INCOMING_PAYMENT_POSTED.value,
                        A.CREDIT_MEMO_POSTED.value, A.RESIDUAL_ITEM_CREATED.value)
_OUTCOME = (A.INVOICE_CLEARED.value, A.INVOICE_POSTED.value)
_REACTION = (A.INCOMING_PAYMENT_POSTED.value, A.PROMISE_TO_PAY_CREATED.value,
             A.DISPUTE_CASE_CREATED.value)


def _f(name, kind, group, description, sources, sap, monotone, unit, sentence,
       sentence_false=None) -> FeatureSpec:
    return FeatureSpec(name, kind, group, description, tuple(sources), sap, monotone, unit,
                       sentence, sentence_false)


def _item_specs() -> list[FeatureSpec]:
    n, c, b = "numeric", "categorical", "bool"
    return [
        # --- invoice ---------------------------------------------------------------------
        _f("amount", n, "invoice", "Invoice amount at posting.", _POST, "BSEG-DMBTR", 0,
           "currency", "invoice of {value:,.2f}"),
        _f("open_amount", n, "invoice", "Amount of the invoice still open at t.",
           _OPEN_AMOUNT_SOURCES, "BSID-DMBTR", 0, "currency", "{value:,.2f} still open"),
        _f("paid_fraction", n, "invoice",
           "Share of the invoice amount already received as incoming payments.", _PAY,
           "BSAD-DMBTR", 0, "share", "{value:.0%} of the invoice already paid"),
        _f("n_partial_payments", n, "invoice",
           "Incoming payments received on the invoice while it is still open.", _PAY,
           "BKPF-BLART (DZ)", 0, "count", "{value:.0f} partial payments received so far"),
        _f("n_residual_items", n, "invoice",
           "Residual items created after partial payments.", (A.RESIDUAL_ITEM_CREATED.value,),
           "BSEG-REBZG", 0, "count", "{value:.0f} residual items left after partial payments"),
        _f("n_credit_memos", n, "invoice", "Credit memos posted against the invoice.",
           (A.CREDIT_MEMO_POSTED.value,), "BKPF-BLART (DG)", 0, "count",
           "{value:.0f} credit memos posted against the invoice"),
        _f("credit_memo_amount", n, "invoice", "Total of the credit memos against the invoice.",
           (A.CREDIT_MEMO_POSTED.value,), "BSEG-DMBTR", 0, "currency",
           "credit memos of {value:,.2f} against the invoice"),
        _f("days_since_posting", n, "invoice", "Days since the invoice was posted.", _POST,
           "BKPF-BUDAT", 0, "days", "invoice posted {value:.0f} days ago"),
        _f("days_to_due", n, "invoice",
           "Calendar days from t to the net due date (negative once past due).", _POST,
           "BSID-FAEDT", 0, "days", "{value:.0f} days left until the due date"),
        _f("days_overdue", n, "invoice",
           "Calendar days past the net due date (0 while not yet due).",
           (A.INVOICE_POSTED.value, A.DUE_DATE_PASSED.value), "BSID-FAEDT", 1, "days",
           "{value:.0f} days past due"),
        _f("terms_net_days", n, "invoice",
           "Net days of the payment terms (due date - posting date when the key is unknown).",
           _POST, "BSEG-ZTERM", 0, "days", "payment terms of {value:.0f} days net"),
        _f("terms_discount_days", n, "invoice", "Days within which a cash discount applies.",
           _POST, "BSEG-ZBD1T", 0, "days", "cash discount if paid within {value:.0f} days"),
        _f("terms_discount_pct", n, "invoice", "Cash discount percentage of the terms.", _POST,
           "BSEG-ZBD1P", 0, "percent", "cash discount of {value:.1f} % offered"),
        _f("payment_terms", c, "invoice", "Payment terms key of the invoice.", _POST,
           "BSEG-ZTERM", 0, "key", "payment terms {value}"),
        _f("company_code", c, "invoice", "Company code the receivable is booked in.", _POST,
           "BKPF-BUKRS", 0, "key", "booked in company code {value}"),
        _f("due_weekday", n, "invoice", "Weekday of the net due date (Monday = 0, Sunday = 6).",
           _POST, "BSID-FAEDT", 0, "weekday",
           "due on weekday {value:.0f} (0 = Monday, 6 = Sunday)"),
        _f("due_month", n, "invoice", "Calendar month of the net due date (1 = January).", _POST,
           "BSID-FAEDT", 0, "month", "due in month {value:.0f} of the year"),
        # --- collection ------------------------------------------------------------------
        _f("dunning_level", n, "collection", "Dunning level of the last dunning run.",
           (A.DUNNING_RUN.value,), "BSID-MAHNS", 0, "level", "at dunning level {value:.0f}"),
        _f("max_dunning_level", n, "collection", "Highest dunning level reached so far.",
           (A.DUNNING_RUN.value,), "BSID-MAHNS", 1, "level",
           "reached dunning level {value:.0f}"),
        _f("n_dunning_runs", n, "collection", "Dunning runs that included the invoice.",
           (A.DUNNING_RUN.value,), "MHNK-LAUFD", 0, "count", "dunned {value:.0f} times"),
        _f("days_since_last_dunning", n, "collection", "Days since the last dunning run.",
           (A.DUNNING_RUN.value,), "MHNK-LAUFD", 0, "days",
           "last dunning letter sent {value:.0f} days ago"),
        _f("dunning_no_reaction_days", n, "collection",
           "Days since the last dunning run without any payment, promise or dispute since "
           "(0 when the customer reacted).", (A.DUNNING_RUN.value,) + _REACTION, "MHNK-LAUFD",
           0, "days", "dunning level {dunning_level:.0f}, no reaction for {value:.0f} days"),
        _f("n_contacts", n, "collection", "Collector contacts recorded for the invoice.",
           (A.COLLECTION_CONTACT.value,), "UDM_CONTACT", 0, "count",
           "customer contacted {value:.0f} times about this invoice"),
        _f("days_since_last_contact", n, "collection", "Days since the last collector contact.",
           (A.COLLECTION_CONTACT.value,), "UDM_CONTACT", 0, "days",
           "last contacted {value:.0f} days ago"),
        _f("promise_open", b, "collection",
           "A promise to pay is open (made and neither kept nor broken yet).",
           (A.PROMISE_TO_PAY_CREATED.value, A.PROMISE_TO_PAY_BROKEN.value), "UDM_P2P_ATTR", 0,
           "flag", "customer promised to pay", "no open promise to pay"),
        _f("days_to_promised_date", n, "collection",
           "Calendar days from t to the promised payment date of the open promise.",
           (A.PROMISE_TO_PAY_CREATED.value,), "UDM_P2P_ATTR-PROMISE_DATE", 0, "days",
           "payment promised within {value:.0f} days"),
        _f("promise_amount", n, "collection", "Amount of the open promise to pay.",
           (A.PROMISE_TO_PAY_CREATED.value,), "UDM_P2P_ATTR-PROMISED_AMT", 0, "currency",
           "promised to pay {value:,.2f}"),
        _f("n_promises", n, "collection", "Promises to pay made on the invoice.",
           (A.PROMISE_TO_PAY_CREATED.value,), "UDM_P2P_ATTR", 0, "count",
           "{value:.0f} promises to pay made on this invoice"),
        _f("n_promises_broken", n, "collection", "Promises to pay on the invoice that were broken.",
           (A.PROMISE_TO_PAY_BROKEN.value,), "UDM_P2P_ATTR", 1, "count",
           "promise to pay broken {value:.0f} times"),
        _f("days_since_customer_reaction", n, "collection",
           "Days since the customer last paid, promised or disputed on this invoice.",
           _REACTION, None, 0, "days", "no word from the customer on it for {value:.0f} days"),
        # --- dispute ---------------------------------------------------------------------
        _f("dispute_open", b, "dispute", "At least one dispute case on the invoice is open.",
           (A.DISPUTE_CASE_CREATED.value, A.DISPUTE_CASE_RESOLVED.value), "UDM_CASE", 0, "flag",
           "invoice is in dispute", "no open dispute"),
        _f("dispute_days_open", n, "dispute",
           "Days the invoice has been continuously in dispute.",
           (A.DISPUTE_CASE_CREATED.value, A.DISPUTE_CASE_RESOLVED.value), "UDM_CASE", 0, "days",
           "dispute open for {value:.0f} days on {disputed_amount:,.2f}"),
        _f("disputed_amount", n, "dispute", "Amount under open dispute cases.",
           (A.DISPUTE_CASE_CREATED.value, A.DISPUTE_CASE_RESOLVED.value), "UDM_CASE-DISPUTED_AMT",
           0, "currency", "{value:,.2f} in dispute"),
        _f("disputed_share", n, "dispute", "Disputed amount as a share of the invoice amount.",
           (A.DISPUTE_CASE_CREATED.value, A.INVOICE_POSTED.value), "UDM_CASE-DISPUTED_AMT", 0,
           "share", "{value:.0%} of the invoice in dispute"),
        _f("n_disputes", n, "dispute", "Dispute cases opened on the invoice.",
           (A.DISPUTE_CASE_CREATED.value,), "UDM_CASE", 0, "count",
           "{value:.0f} dispute cases on this invoice"),
        _f("payment_block_active", b, "dispute", "A payment block is set on the item.",
           (A.PAYMENT_BLOCK_SET.value,), "BSEG-ZLSPR", 0, "flag", "item is blocked for payment",
           "no payment block"),
        # --- master ----------------------------------------------------------------------
        _f("risk_category", c, "master", "Customer credit risk category at t.", _POST,
           "KNKK-CTLPC", 0, "key", "customer risk category {value}"),
        _f("credit_limit", n, "master", "Customer credit limit at t.", _POST, "KNKK-KLIMK", 0,
           "currency", "credit limit of {value:,.0f}"),
        _f("credit_used_ratio", n, "master",
           "Customer's open receivables at t (this invoice included) / credit limit.",
           _OPEN_AMOUNT_SOURCES + (A.INVOICE_CLEARED.value, A.INVOICE_WRITTEN_OFF.value),
           "KNKK-KLIMK", 0, "share", "customer uses {value:.0%} of its credit limit"),
        _f("customer_segment", c, "master", "Customer segment at t.", _POST, "KNA1-KTOKD", 0,
           "key", "{value} customer"),
        _f("collector", c, "master", "Collector responsible for the customer at t.", _POST,
           "KNB1-SACHP", 0, "key", "handled by collector {value}"),
    ]


def _outcome_specs(suffix: str, when: str) -> list[FeatureSpec]:
    n = "numeric"
    lead = f"{when}: " if when else ""
    return [
        _f(f"hist_n_cleared{suffix}", n, "history",
           f"Customer's other invoices paid (cleared){' ' + when if when else ''}.", _OUTCOME,
           "BSAD-AUGDT", 0, "count", lead + "{value:.0f} invoices of this customer paid"),
        _f(f"hist_n_cleared_late{suffix}", n, "history",
           f"Of those, paid after due date + grace days{' ' + when if when else ''}.", _OUTCOME,
           "BSAD-AUGDT", 0, "count",
           lead + "paid {value:.0f} of {hist_n_cleared" + suffix + ":.0f} invoices late"),
        _f(f"hist_late_ratio{suffix}", n, "history",
           f"Share of paid invoices paid late{' ' + when if when else ''}.", _OUTCOME,
           "BSAD-AUGDT", 1, "share",
           lead + "paid {hist_n_cleared_late" + suffix + ":.0f} of the last {hist_n_cleared"
           + suffix + ":.0f} invoices late, {hist_avg_days_late" + suffix
           + ":.0f} days on average"),
        _f(f"hist_avg_days_late{suffix}", n, "history",
           f"Mean days between due date and payment (negative: early){' ' + when if when else ''}.",
           _OUTCOME, "BSAD-AUGDT", 1, "days",
           lead + "pays {value:.0f} days after the due date on average"),
        _f(f"hist_max_days_late{suffix}", n, "history",
           f"Most days late on a paid invoice{' ' + when if when else ''}.", _OUTCOME,
           "BSAD-AUGDT", 0, "days", lead + "paid up to {value:.0f} days late"),
        _f(f"hist_std_days_late{suffix}", n, "history",
           f"Spread (standard deviation) of days late{' ' + when if when else ''}.", _OUTCOME,
           "BSAD-AUGDT", 0, "days", lead + "payment timing varies by {value:.0f} days"),
    ]


def _history_specs(windows: tuple[int, ...]) -> list[FeatureSpec]:
    n, b = "numeric", "bool"
    specs = _outcome_specs("", "")
    specs.insert(3, _f(
        "hist_late_ratio_amount", n, "history",
        "Share of the paid amount (invoice amounts) that was paid late.", _OUTCOME, "BSAD-DMBTR",
        1, "share", "{value:.0%} of the amount it paid came late"))
    for w in windows:
        specs += _outcome_specs(f"_{w}d", f"in the last {w} days")
    specs += [
        _f("hist_n_written_off", n, "history", "Customer's invoices written off as bad debt.",
           (A.INVOICE_WRITTEN_OFF.value,), "BSEG-RSTGR", 0, "count",
           "{value:.0f} invoices of this customer written off"),
        _f("hist_written_off_amount", n, "history", "Amount of the customer's write-offs.",
           (A.INVOICE_WRITTEN_OFF.value,), "BSEG-DMBTR", 0, "currency",
           "{value:,.2f} of this customer's receivables written off"),
        _f("hist_n_open_other", n, "history", "Customer's other invoices open at t.",
           _POST + (A.INVOICE_CLEARED.value, A.INVOICE_WRITTEN_OFF.value), "BSID-BELNR", 0,
           "count", "{value:.0f} other invoices open"),
        _f("hist_open_amount_other", n, "history", "Open amount of the customer's other invoices.",
           _OPEN_AMOUNT_SOURCES, "BSID-DMBTR", 0, "currency",
           "{value:,.2f} open on other invoices"),
        _f("hist_n_overdue_other", n, "history", "Customer's other invoices overdue at t.",
           (A.DUE_DATE_PASSED.value,) + _POST, "BSID-FAEDT", 0, "count",
           "{value:.0f} other invoices overdue ({hist_overdue_amount_other:,.2f})"),
        _f("hist_overdue_amount_other", n, "history",
           "Open amount of the customer's other overdue invoices.",
           (A.DUE_DATE_PASSED.value,) + _OPEN_AMOUNT_SOURCES, "BSID-DMBTR", 0, "currency",
           "{value:,.2f} overdue on other invoices"),
        _f("hist_avg_days_overdue_other", n, "history",
           "Mean days past due of the customer's other overdue invoices.",
           (A.DUE_DATE_PASSED.value,), "BSID-FAEDT", 0, "days",
           "other overdue invoices are {value:.0f} days past due on average"),
        _f("hist_n_promises_other", n, "history",
           "Promises to pay the customer made on other invoices.",
           (A.PROMISE_TO_PAY_CREATED.value,), "UDM_P2P_ATTR", 0, "count",
           "{value:.0f} promises to pay on other invoices"),
        _f("hist_promise_broken_rate", n, "history",
           "Share of the customer's promises on other invoices that were broken.",
           (A.PROMISE_TO_PAY_CREATED.value, A.PROMISE_TO_PAY_BROKEN.value), "UDM_P2P_ATTR", 0,
           "share", "broke {value:.0%} of its promises to pay"),
        _f("hist_n_disputes_other", n, "history", "Dispute cases on the customer's other invoices.",
           (A.DISPUTE_CASE_CREATED.value,), "UDM_CASE", 0, "count",
           "{value:.0f} disputes on other invoices"),
    ]
    specs += [
        _f(f"hist_n_disputed_invoices_{w}d", n, "history",
           f"Other invoices of the customer with a dispute case opened in the last {w} days.",
           (A.DISPUTE_CASE_CREATED.value,), "UDM_CASE", 0, "count",
           f"{{value:.0f}} other invoices disputed in the last {w} days")
        for w in windows
    ]
    specs += [
        _f("hist_days_since_last_payment", n, "history",
           "Days since the customer's last incoming payment on any invoice.", _PAY,
           "BKPF-BUDAT (DZ)", 0, "days", "last payment received {value:.0f} days ago"),
        _f("hist_n_invoices", n, "history", "Customer's other invoices posted before t.", _POST,
           "BKPF-BELNR", 0, "count", "{value:.0f} earlier invoices with this customer"),
        _f("hist_customer_tenure_days", n, "history", "Days since the customer's first invoice.",
           _POST, "BKPF-BUDAT", 0, "days", "customer for {value:.0f} days"),
        _f("cold_start", b, "history",
           "Fewer paid invoices known than config.cold_start_min_cleared (little history).",
           _OUTCOME, None, 0, "flag", "new customer with little payment history",
           "known customer with a payment history"),
    ]
    return specs + _recency_season_specs()


def _recency_season_specs() -> list[FeatureSpec]:
    """Recent habit, season of the due date and size of the bill (features.pit.history docstring)."""
    n = "numeric"
    recent = "the customer's most recently paid invoices (up to 8, the latest weighing most)"
    return [
        _f("hist_avg_days_to_settle", n, "history",
           "Mean days from posting to payment (clearing) of the customer's paid invoices.",
           _OUTCOME, "BSAD-AUGDT", 0, "days",
           "takes {value:.0f} days on average to pay an invoice"),
        _f("hist_undisputed_late_ratio", n, "history",
           "Share paid late of the customer's paid invoices that had no dispute case (known "
           "when the payment was): its habit, without the delays that disputes explain.",
           _OUTCOME + (A.DISPUTE_CASE_CREATED.value,), "BSAD-AUGDT", 1, "share",
           "paid {value:.0%} of its undisputed invoices late"),
        _f("hist_undisputed_avg_days_late", n, "history",
           "Mean days late of the customer's paid invoices that had no dispute case.",
           _OUTCOME + (A.DISPUTE_CASE_CREATED.value,), "BSAD-AUGDT", 1, "days",
           "pays undisputed invoices {value:.0f} days after the due date on average"),
        _f("hist_last_days_late", n, "history",
           "Days between due date and payment of the customer's most recently paid invoice.",
           _OUTCOME, "BSAD-AUGDT", 1, "days",
           "paid its last invoice {value:.0f} days after the due date"),
        _f("hist_last_days_to_settle", n, "history",
           "Days from posting to payment of the customer's most recently paid invoice.",
           _OUTCOME, "BSAD-AUGDT", 0, "days", "took {value:.0f} days to pay its last invoice"),
        _f("hist_ewm_days_late", n, "history",
           f"Exponentially weighted mean days late over {recent}; half-life 3 invoices.",
           _OUTCOME, "BSAD-AUGDT", 1, "days",
           "lately pays {value:.0f} days after the due date"),
        _f("hist_ewm_days_to_settle", n, "history",
           f"Exponentially weighted mean days from posting to payment over {recent}.",
           _OUTCOME, "BSAD-AUGDT", 0, "days",
           "lately takes {value:.0f} days to pay an invoice"),
        _f("hist_ewm_late_ratio", n, "history",
           f"Exponentially weighted share paid late over {recent}.", _OUTCOME, "BSAD-AUGDT", 1,
           "share", "paid {value:.0%} of its recent invoices late (latest weighing most)"),
        _f("hist_recent_median_days_late", n, "history",
           "Median days late of the customer's last 5 paid invoices.", _OUTCOME, "BSAD-AUGDT", 1,
           "days", "paid its last invoices a median {value:.0f} days after the due date"),
        _f("hist_days_late_trend", n, "history",
           "Mean days late over the shortest history window minus over the longest (all history "
           "with one window); positive when the customer pays later than it used to.", _OUTCOME,
           "BSAD-AUGDT", 0, "days", "pays {value:.0f} days later than over the past year"),
        _f("hist_days_late_slope", n, "history",
           "Slope of days late over due date through the customer's last (up to 8) paid "
           "invoices, in days per 30 days (least squares; at least 3 invoices).", _OUTCOME,
           "BSAD-AUGDT", 0, "days/month",
           "pays {value:.1f} days later every month lately"),
        _f("hist_days_late_trend_at_due", n, "history",
           "That line read at this invoice's due date: the days late to expect if the recent "
           "trend goes on.", _OUTCOME, "BSAD-AUGDT", 0, "days",
           "at its recent trend, would pay {value:.0f} days after this due date"),
        _f("hist_month_n_cleared", n, "history",
           "Customer's paid invoices due in the same calendar month as this one (any year).",
           _OUTCOME, "BSAD-AUGDT", 0, "count",
           "{value:.0f} paid invoices due in this month of the year"),
        _f("hist_month_late_ratio", n, "history",
           "Share paid late of the invoices due in the same calendar month (any year).",
           _OUTCOME, "BSAD-AUGDT", 1, "share",
           "paid {value:.0%} of its invoices due in this month of the year late"),
        _f("hist_month_avg_days_late", n, "history",
           "Mean days late of the invoices due in the same calendar month (any year).", _OUTCOME,
           "BSAD-AUGDT", 1, "days",
           "pays invoices due in this month of the year {value:.0f} days late on average"),
        _f("hist_season_n_cleared", n, "history",
           "Customer's paid invoices due within one calendar month of this one's due month.",
           _OUTCOME, "BSAD-AUGDT", 0, "count",
           "{value:.0f} paid invoices due at this time of year"),
        _f("hist_season_late_ratio", n, "history",
           "Share paid late of the invoices due within one month of this due month (any year).",
           _OUTCOME, "BSAD-AUGDT", 1, "share",
           "paid {value:.0%} of its invoices due at this time of year late"),
        _f("hist_season_avg_days_late", n, "history",
           "Mean days late of the invoices due within one month of this due month (any year).",
           _OUTCOME, "BSAD-AUGDT", 1, "days",
           "pays invoices due at this time of year {value:.0f} days late on average"),
        _f("hist_season_excess_days_late", n, "history",
           "Season mean days late minus the customer's overall mean: its seasonal slowdown.",
           _OUTCOME, "BSAD-AUGDT", 0, "days",
           "pays {value:.0f} days later than usual at this time of year"),
        _f("hist_ewm_late_ratio_season_adj", n, "history",
           "Recent share paid late (EWM) with each recent invoice's season effect taken out and "
           "this invoice's season effect put back (season effects: late ratio within one month "
           "of a due month vs overall, shrunk by 3 pseudo-invoices).", _OUTCOME, "BSAD-AUGDT",
           1, "share", "at this time of year, recently pays about {value:.0%} of invoices late"),
        _f("hist_ewm_days_late_season_adj", n, "history",
           "Recent mean days late (EWM) adjusted for the season the same way.", _OUTCOME,
           "BSAD-AUGDT", 1, "days",
           "at this time of year, recently pays about {value:.0f} days after the due date"),
        _f("hist_season_effect", n, "history",
           "Late share at this time of year (invoices due within one month of this due month, "
           "shrunk by 3 pseudo-invoices towards the overall share) minus the overall share.",
           _OUTCOME, "BSAD-AUGDT", 1, "share difference",
           "at this time of year its late share is {value:+.0%} against its overall share"),
        _f("hist_season_amplitude", n, "history",
           "Largest minus smallest season effect over the twelve due months: how strongly the "
           "customer's lateness follows the time of year.", _OUTCOME, "BSAD-AUGDT", 0, "share",
           "its late share swings by {value:.0%} between its best and worst time of year"),
        _f("hist_same_segment_n_cleared", n, "history",
           "Customer's paid invoices posted while it was in its current segment (master data).",
           _OUTCOME, "KNA1-KTOKD", 0, "count",
           "{value:.0f} invoices paid since in its current segment"),
        _f("hist_same_segment_share", n, "history",
           "Share of the customer's paid invoices posted while it was in its current segment "
           "(below 1: part of its history is from before a segment change).", _OUTCOME,
           "KNA1-KTOKD", 0, "share",
           "{value:.0%} of its payment history is from its current segment"),
        _f("hist_same_segment_late_ratio", n, "history",
           "Share paid late of the invoices posted in the customer's current segment.", _OUTCOME,
           "KNA1-KTOKD", 1, "share",
           "paid {value:.0%} of its invoices late since in its current segment"),
        _f("hist_same_segment_avg_days_late", n, "history",
           "Mean days late of the invoices posted in the customer's current segment.", _OUTCOME,
           "KNA1-KTOKD", 1, "days",
           "pays {value:.0f} days after the due date since in its current segment"),
        _f("hist_avg_invoice_amount", n, "history",
           "Mean amount of the customer's other invoices posted before t.", _POST, "BSEG-DMBTR",
           0, "currency", "usually bills {value:,.2f} per invoice"),
        _f("amount_vs_customer_avg", n, "history",
           "Invoice amount / the mean amount of the customer's other invoices.", _POST,
           "BSEG-DMBTR", 0, "ratio", "invoice is {value:.1f} times the customer's usual amount"),
    ]


def feature_specs(config: FeatureConfig = FeatureConfig()) -> tuple[FeatureSpec, ...]:
    """The catalogue for a feature config (window features follow history_windows_days)."""
    windows = tuple(int(w) for w in config.history_windows_days)
    specs = tuple(_item_specs() + _history_specs(windows))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate feature names in the catalogue")
    return specs


def feature_set_version(config: FeatureConfig = FeatureConfig()) -> str:
    """FEATURE_SET_VERSION, tagged when the config changes what a feature means."""
    default = FeatureConfig()
    tags = []
    if tuple(config.history_windows_days) != tuple(default.history_windows_days):
        tags.append("w" + "-".join(str(w) for w in config.history_windows_days))
    if config.grace_days != default.grace_days:
        tags.append(f"g{config.grace_days}")
    if config.cold_start_min_cleared != default.cold_start_min_cleared:
        tags.append(f"c{config.cold_start_min_cleared}")
    return FEATURE_SET_VERSION + ("+" + ".".join(tags) if tags else "")


FEATURES: tuple[FeatureSpec, ...] = feature_specs()
FEATURES_BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
BOOL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "bool")
MONOTONE: dict[str, int] = {f.name: f.monotone for f in FEATURES}


def feature_names(config: FeatureConfig = FeatureConfig()) -> tuple[str, ...]:
    return tuple(f.name for f in feature_specs(config))


def explain(spec: FeatureSpec, row: dict) -> str:
    """The spec's sentence filled from a row (dict of feature values)."""
    value = row.get(spec.name)
    template = spec.sentence
    if spec.kind == "bool" and spec.sentence_false is not None and not bool(value):
        template = spec.sentence_false
    return template.format(value=value, **{k: v for k, v in row.items() if k != "value"})


__all__ = ["FeatureSpec", "FEATURES", "FEATURES_BY_NAME", "FEATURE_NAMES",
           "CATEGORICAL_FEATURES", "BOOL_FEATURES", "MONOTONE", "FEATURE_SET_VERSION",
           "feature_specs", "feature_names", "feature_set_version", "explain"]
