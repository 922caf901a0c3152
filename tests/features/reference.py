"""A slow, obviously correct reference for the point-in-time features and labels.

It computes one (invoice, t) row at a time, from scratch, with plain Python loops over the events
of that invoice's customer, following the rules written in features/item_state.py,
features/history.py and features/labels.py. It shares nothing with the fast builder except the
schema and the feature catalogue (names), so a bug in the vectorised code cannot hide here.

Rules it implements (the contract, restated):
- known(e) = max(event_time, recorded_time); an event is visible at t when known(e) <= t;
- events of an invoice replay in order (known, event_time, schema.ACTIVITIES rank, input row);
- amounts count in cents (round half to even of amount * 100);
- calendar-day quantities use floor(us / day).

Also here: `adversarial_ledger(seed)`, a small random event log that the simulator does not
produce: late-recorded events (backdated postings and clearings), several events at one instant,
several dispute cases per invoice (some without a case id), payment blocks set and lifted,
credit memos, residual items, promises kept and broken, write-offs, master changes.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd

from features import schema

A = schema.Activity
DAY = 86_400_000_000
RANK = {spec.activity.value: i for i, spec in enumerate(schema.ACTIVITIES)}
NAN = float("nan")


def _us(value) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return pd.Timestamp(value).value // 1000  # ns since the epoch -> us


def _cents(value) -> int | None:
    if value is None or pd.isna(value):
        return None
    return int(round(float(value) * 100))


def _str(value) -> str | None:
    if value is None or pd.isna(value):
        return None
    return str(value)


def _day(us: int) -> int:
    return us // DAY


def _ratio(num, den) -> float:
    return num / den if den > 0 else NAN


class Reference:
    """Events and master read into plain Python lists; features and labels of one row at a time."""

    def __init__(self, events: pd.DataFrame, master: pd.DataFrame | None,
                 config, end_time=None):
        self.config = config
        self.events: list[dict] = []
        columns = list(events.columns)
        for pos, values in enumerate(events.itertuples(index=False, name=None)):
            raw = dict(zip(columns, values))
            etime = _us(raw["event_time"])
            rec = _us(raw.get("recorded_time"))
            self.events.append({
                "pos": pos,
                "act": str(raw["activity"]),
                "inv": str(raw["invoice_id"]),
                "cust": _str(raw.get("customer_id")),
                "etime": etime,
                "known": etime if rec is None else max(etime, rec),
                "cents": _cents(raw.get("amount")),
                "level": None if pd.isna(raw.get("dunning_level")) else int(raw["dunning_level"]),
                "promised": _us(raw.get("promised_date")),
                "block": _str(raw.get("payment_block")),
                "case": _str(raw.get("dispute_case_id")),
                "due": _us(raw.get("net_due_date")),
                "company": _str(raw.get("company_code")),
                "doc": _str(raw.get("document_type")),
                "terms": _str(raw.get("payment_terms")),
                "raw": raw,
            })
        self.by_invoice: dict[str, list[dict]] = {}
        for e in self.events:
            self.by_invoice.setdefault(e["inv"], []).append(e)
        for evs in self.by_invoice.values():
            evs.sort(key=lambda e: (e["known"], e["etime"], RANK[e["act"]], e["pos"]))
        self.posting: dict[str, dict] = {}
        for inv, evs in self.by_invoice.items():
            for e in evs:
                if e["act"] == A.INVOICE_POSTED.value:
                    self.posting[inv] = e
                    break
        self.customer_invoices: dict[str, list[str]] = {}
        for inv, post in self.posting.items():
            self.customer_invoices.setdefault(post["cust"], []).append(inv)

        refresh = [_us(v) for v in events["last_refresh"]] if "last_refresh" in events else []
        refresh = [v for v in refresh if v is not None]
        self.end = _us(end_time) if end_time is not None else (
            max(refresh) if refresh else max(e["known"] for e in self.events))

        self.master: dict[str, list[tuple]] = {}
        if master is None:
            # Versions rebuilt from events: each event's non-blank attributes, from its known time.
            for e in sorted(self.events, key=lambda e: (e["known"], e["pos"])):
                raw = e["raw"]
                attrs = {k: raw.get(k) for k in ("risk_category", "credit_limit",
                                                 "customer_segment", "collector")}
                if all(v is None or pd.isna(v) for v in attrs.values()):
                    continue
                history = self.master.setdefault(e["cust"], [])
                previous = history[-1][2] if history else {}
                merged = {k: (v if v is not None and not pd.isna(v) else previous.get(k))
                          for k, v in attrs.items()}
                history.append((e["known"], len(history), merged))
        else:
            for pos, row in enumerate(master.to_dict("records")):
                self.master.setdefault(str(row["customer_id"]), []).append(
                    (_us(row["valid_from"]), pos, row))

    # ------------------------------------------------------------------ one invoice ----------
    def terminal(self, inv: str) -> dict | None:
        for e in self.by_invoice[inv]:
            if e["act"] in (A.INVOICE_CLEARED.value, A.INVOICE_WRITTEN_OFF.value):
                return e
        return None

    def fold(self, inv: str, t: int, before: dict | None = None) -> dict:
        """State of invoice `inv` from its events known at t (stopping before `before`)."""
        s = {"posted": False, "closed": False, "open": 0, "paid": 0, "n_pay": 0, "n_resid": 0,
             "n_cm": 0, "cm": 0, "level": 0, "max_level": 0, "n_dun": 0, "last_dun": None,
             "n_contacts": 0, "last_contact": None, "promise": None, "n_prom": 0,
             "n_broken": 0, "cases": [], "resolutions": {}, "since": None, "n_disp": 0,
             "last_disp": None, "block": False, "reaction": None, "amount": None}
        for e in self.by_invoice[inv]:
            if e is before:
                break
            if e["known"] > t:
                break  # sorted by known time first: nothing later is visible either
            act = e["act"]
            cents = e["cents"] or 0
            if act == A.INVOICE_POSTED.value:
                if not s["posted"]:
                    s["posted"] = True
                    s["amount"] = cents
                s["open"] = cents
            elif act == A.RESIDUAL_ITEM_CREATED.value:
                s["open"] = cents
                s["n_resid"] += 1
            elif act == A.INCOMING_PAYMENT_POSTED.value:
                s["open"] -= cents
                s["paid"] += cents
                s["n_pay"] += 1
                s["reaction"] = e["known"]
            elif act == A.CREDIT_MEMO_POSTED.value:
                s["open"] -= cents
                s["n_cm"] += 1
                s["cm"] += cents
            elif act in (A.INVOICE_CLEARED.value, A.INVOICE_WRITTEN_OFF.value):
                s["closed"] = True
            elif act == A.DUNNING_RUN.value:
                s["n_dun"] += 1
                s["last_dun"] = e["known"]
                if e["level"]:
                    s["level"] = e["level"]
                    s["max_level"] = max(s["max_level"], e["level"])
            elif act == A.COLLECTION_CONTACT.value:
                s["n_contacts"] += 1
                s["last_contact"] = e["known"]
            elif act == A.PROMISE_TO_PAY_CREATED.value:
                s["n_prom"] += 1
                s["promise"] = (e["promised"], e["cents"])
                s["reaction"] = e["known"]
            elif act == A.PROMISE_TO_PAY_BROKEN.value:
                s["n_broken"] += 1
                s["promise"] = None
            elif act == A.DISPUTE_CASE_CREATED.value:
                was_open = any(c["open"] for c in s["cases"])
                s["cases"].append({"id": e["case"], "cents": cents, "open": True})
                s["n_disp"] += 1
                s["last_disp"] = e["known"]
                s["reaction"] = e["known"]
                if not was_open:
                    s["since"] = e["known"]
            elif act == A.DISPUTE_CASE_RESOLVED.value:
                k = s["resolutions"].get(e["case"], 0)
                s["resolutions"][e["case"]] = k + 1
                same = [c for c in s["cases"] if c["id"] == e["case"]]
                if len(same) > k:
                    same[k]["open"] = False
            elif act == A.PAYMENT_BLOCK_SET.value:
                s["block"] = bool(e["block"] and e["block"].strip())
        if s["closed"] or not s["posted"]:
            s["open"] = 0
        s["open"] = max(s["open"], 0)
        s["dispute_open"] = any(c["open"] for c in s["cases"])
        s["disputed"] = sum(c["cents"] for c in s["cases"] if c["open"])
        return s

    # -------------------------------------------------------------------- features ------------
    def features(self, inv: str, t: int) -> dict:
        cfg = self.config
        post = self.posting[inv]
        s = self.fold(inv, t)
        assert s["posted"] and not s["closed"], f"{inv} is not open at {t}"
        f: dict = {}
        amount = s["amount"] / 100
        due = post["due"]
        t_day = _day(t)
        f["amount"] = amount
        f["open_amount"] = s["open"] / 100
        f["paid_fraction"] = s["paid"] / s["amount"] if s["amount"] > 0 else NAN
        f["n_partial_payments"] = s["n_pay"]
        f["n_residual_items"] = s["n_resid"]
        f["n_credit_memos"] = s["n_cm"]
        f["credit_memo_amount"] = s["cm"] / 100
        f["days_since_posting"] = (t - post["etime"]) / DAY
        f["days_to_due"] = _day(due) - t_day
        f["days_overdue"] = max(t_day - _day(due), 0)
        terms = schema.parse_payment_terms(post["terms"])
        f["terms_net_days"] = (terms.net_days if terms else _day(due) - _day(post["etime"]))
        f["terms_discount_days"] = terms.discount_days if terms else 0
        f["terms_discount_pct"] = terms.discount_pct if terms else 0.0
        f["payment_terms"] = post["terms"]
        f["company_code"] = post["company"]
        due_ts = pd.Timestamp(due * 1000)
        f["due_weekday"] = float(due_ts.weekday())
        f["due_month"] = float(due_ts.month)
        f["dunning_level"] = s["level"]
        f["max_dunning_level"] = s["max_level"]
        f["n_dunning_runs"] = s["n_dun"]
        f["days_since_last_dunning"] = ((t - s["last_dun"]) / DAY if s["last_dun"] is not None
                                         else NAN)
        if s["last_dun"] is None:
            f["dunning_no_reaction_days"] = NAN
        elif s["reaction"] is not None and s["reaction"] >= s["last_dun"]:
            f["dunning_no_reaction_days"] = 0.0
        else:
            f["dunning_no_reaction_days"] = (t - s["last_dun"]) / DAY
        f["n_contacts"] = s["n_contacts"]
        f["days_since_last_contact"] = ((t - s["last_contact"]) / DAY
                                        if s["last_contact"] is not None else NAN)
        promise = s["promise"]
        f["promise_open"] = promise is not None
        f["days_to_promised_date"] = (_day(promise[0]) - t_day
                                      if promise and promise[0] is not None else NAN)
        f["promise_amount"] = promise[1] / 100 if promise and promise[1] is not None else NAN
        f["n_promises"] = s["n_prom"]
        f["n_promises_broken"] = s["n_broken"]
        f["days_since_customer_reaction"] = ((t - s["reaction"]) / DAY
                                             if s["reaction"] is not None else NAN)
        f["dispute_open"] = s["dispute_open"]
        f["dispute_days_open"] = (t - s["since"]) / DAY if s["dispute_open"] else NAN
        f["disputed_amount"] = s["disputed"] / 100
        f["disputed_share"] = s["disputed"] / s["amount"] if s["amount"] > 0 else NAN
        f["n_disputes"] = s["n_disp"]
        f["payment_block_active"] = s["block"]

        self.t_now = t
        f.update(self._history(inv, t, s, post["cust"]))
        f.update(self._master(post["cust"], t, f["_cust_open"]))
        del f["_cust_open"]
        return f

    def _history(self, own: str, t: int, own_state: dict, cust: str) -> dict:
        cfg = self.config
        t_day = _day(t)
        windows = [int(w) for w in cfg.history_windows_days]
        settled = []  # (known, days_late, invoice cents) of cleared other invoices
        paid = []  # (known, invoice id, days late, days to settle, due month) of the same
        posted_cents = 0
        n_wo = wo_cents = 0
        n_posted = 0
        first_post = None
        n_open = open_cents = n_overdue = overdue_cents = overdue_days = 0
        n_prom = n_broken = n_disp = 0
        disputed_recent = {w: 0 for w in windows}
        last_payment = None
        cust_open = 0
        for inv in self.customer_invoices[cust]:
            post = self.posting[inv]
            if post["known"] > t:
                continue  # the customer's books show an invoice once its posting is known
            for e in self.by_invoice[inv]:
                if e["known"] <= t and e["act"] == A.INCOMING_PAYMENT_POSTED.value:
                    last_payment = e["known"] if last_payment is None else max(last_payment,
                                                                                 e["known"])
            if first_post is None or post["known"] < first_post:
                first_post = post["known"]
            s = own_state if inv == own else self.fold(inv, t)
            cust_open += s["open"]
            if inv == own:
                continue
            n_posted += 1
            posted_cents += post["cents"]
            n_prom += s["n_prom"]
            n_broken += s["n_broken"]
            n_disp += s["n_disp"]
            for w in windows:
                if s["last_disp"] is not None and s["last_disp"] > t - w * DAY:
                    disputed_recent[w] += 1
            term = self.terminal(inv)
            if term is not None and term["known"] <= t:
                if term["act"] == A.INVOICE_WRITTEN_OFF.value:
                    n_wo += 1
                    wo_cents += self.fold(inv, t, before=term)["open"]
                else:
                    days_late = _day(term["etime"]) - _day(post["due"])
                    shown = max(term["known"], post["known"])
                    settled.append((shown, days_late, post["cents"]))
                    due_month = pd.Timestamp(post["due"] * 1000).month
                    disputed = any(
                        e["act"] == A.DISPUTE_CASE_CREATED.value
                        and max(e["known"], post["known"]) <= shown for e in self.by_invoice[inv])
                    paid.append((shown, inv, days_late,
                                 _day(term["etime"]) - _day(post["etime"]), due_month, disputed,
                                 _day(post["due"]),
                                 self._master(cust, post["known"], 0)["customer_segment"]))
                continue
            n_open += 1
            open_cents += s["open"]
            if t_day >= _day(post["due"]) + 1:
                n_overdue += 1
                overdue_cents += s["open"]
                overdue_days += t_day - _day(post["due"])

        f: dict = {}

        def outcome(rows, suffix: str, with_amount: bool) -> None:
            n = len(rows)
            late = [r for r in rows if r[1] > cfg.grace_days]
            f[f"hist_n_cleared{suffix}"] = n
            f[f"hist_n_cleared_late{suffix}"] = len(late)
            f[f"hist_late_ratio{suffix}"] = _ratio(len(late), n)
            if with_amount:
                f["hist_late_ratio_amount"] = _ratio(sum(r[2] for r in late),
                                                     sum(r[2] for r in rows))
            if n:
                mean = sum(r[1] for r in rows) / n
                f[f"hist_avg_days_late{suffix}"] = mean
                f[f"hist_max_days_late{suffix}"] = max(r[1] for r in rows)
                f[f"hist_std_days_late{suffix}"] = math.sqrt(
                    sum((r[1] - mean) ** 2 for r in rows) / n)
            else:
                for name in ("avg", "max", "std"):
                    f[f"hist_{name}_days_late{suffix}"] = NAN

        outcome(settled, "", True)
        for w in windows:
            outcome([r for r in settled if r[0] > t - w * DAY], f"_{w}d", False)
        f["hist_n_written_off"] = n_wo
        f["hist_written_off_amount"] = wo_cents / 100
        f["hist_n_open_other"] = n_open
        f["hist_open_amount_other"] = open_cents / 100
        f["hist_n_overdue_other"] = n_overdue
        f["hist_overdue_amount_other"] = overdue_cents / 100
        f["hist_avg_days_overdue_other"] = _ratio(overdue_days, n_overdue)
        f["hist_n_promises_other"] = n_prom
        f["hist_promise_broken_rate"] = _ratio(n_broken, n_prom)
        f["hist_n_disputes_other"] = n_disp
        for w in windows:
            f[f"hist_n_disputed_invoices_{w}d"] = disputed_recent[w]
        f["hist_days_since_last_payment"] = ((t - last_payment) / DAY
                                             if last_payment is not None else NAN)
        f["hist_n_invoices"] = n_posted
        f["hist_customer_tenure_days"] = (t - first_post) / DAY
        f["cold_start"] = len(settled) < cfg.cold_start_min_cleared
        f.update(self._recency_season(own, paid, posted_cents, n_posted, f))
        f["_cust_open"] = cust_open
        return f

    def _recency_season(self, own: str, paid: list, posted_cents: int, n_posted: int,
                        f: dict) -> dict:
        """Recent paid invoices (last 8 by known time, ties by invoice id), season of the due
        date, size of the bill: written out by hand."""
        cfg = self.config
        out: dict = {}
        n = len(paid)
        out["hist_avg_days_to_settle"] = _ratio(sum(p[3] for p in paid), n)
        clean = [p for p in paid if not p[5]]
        out["hist_undisputed_late_ratio"] = _ratio(
            sum(1 for p in clean if p[2] > cfg.grace_days), len(clean))
        out["hist_undisputed_avg_days_late"] = _ratio(sum(p[2] for p in clean), len(clean))
        latest_first = sorted(paid, key=lambda p: (p[0], p[1]), reverse=True)[:8]

        def weighted(values):
            num = den = 0.0
            for k, v in enumerate(values):
                w = 0.5 ** (k / 3.0)
                num += w * v
                den += w
            return num / den if den > 0 else NAN

        lates = [p[2] for p in latest_first]
        settles = [p[3] for p in latest_first]
        out["hist_last_days_late"] = lates[0] if lates else NAN
        out["hist_last_days_to_settle"] = settles[0] if settles else NAN
        out["hist_ewm_days_late"] = weighted(lates)
        out["hist_ewm_days_to_settle"] = weighted(settles)
        out["hist_ewm_late_ratio"] = weighted([1.0 if d > cfg.grace_days else 0.0 for d in lates])
        last5 = sorted(lates[:5])
        if not last5:
            out["hist_recent_median_days_late"] = NAN
        elif len(last5) % 2:
            out["hist_recent_median_days_late"] = float(last5[len(last5) // 2])
        else:
            mid = len(last5) // 2
            out["hist_recent_median_days_late"] = (last5[mid - 1] + last5[mid]) / 2
        # Drift line: least squares of days late on due day over the recent paid invoices.
        xs = [p[6] for p in latest_first]
        n_r = len(xs)
        slope = NAN
        if n_r >= 3:
            mx = sum(xs) / n_r
            my = sum(lates) / n_r
            sxx = sum((x - mx) ** 2 for x in xs)
            if sxx > 0:
                slope = sum((x - mx) * (v - my) for x, v in zip(xs, lates)) / sxx
        out["hist_days_late_slope"] = slope * 30.0
        own_due = _day(self.posting[own]["due"])
        out["hist_days_late_trend_at_due"] = (my + slope * (own_due - mx)
                                              if not math.isnan(slope) else NAN)
        windows = sorted(int(w) for w in cfg.history_windows_days)
        short = f[f"hist_avg_days_late_{windows[0]}d"] if windows else f["hist_avg_days_late"]
        long_ = (f[f"hist_avg_days_late_{windows[-1]}d"] if len(windows) > 1
                 else f["hist_avg_days_late"])
        out["hist_days_late_trend"] = short - long_

        month = pd.Timestamp(self.posting[own]["due"] * 1000).month
        for label, near in (("month", {month}),
                            ("season", {month, month % 12 + 1, (month - 2) % 12 + 1})):
            rows = [p for p in paid if p[4] in near]
            out[f"hist_{label}_n_cleared"] = len(rows)
            out[f"hist_{label}_late_ratio"] = _ratio(
                sum(1 for p in rows if p[2] > cfg.grace_days), len(rows))
            out[f"hist_{label}_avg_days_late"] = _ratio(sum(p[2] for p in rows), len(rows))
        out["hist_season_excess_days_late"] = (out["hist_season_avg_days_late"]
                                               - f["hist_avg_days_late"])
        out.update(self._season_adjusted(paid, latest_first, month, f))
        segment_now = self._master(self.posting[own]["cust"], self.t_now, 0)["customer_segment"]
        same = [p for p in paid if segment_now is not None and p[7] == segment_now]
        out["hist_same_segment_n_cleared"] = len(same)
        out["hist_same_segment_share"] = _ratio(len(same), len(paid))
        out["hist_same_segment_late_ratio"] = _ratio(
            sum(1 for p in same if p[2] > cfg.grace_days), len(same))
        out["hist_same_segment_avg_days_late"] = _ratio(sum(p[2] for p in same), len(same))
        own_cents = self.posting[own]["cents"]
        avg = posted_cents / n_posted / 100 if n_posted else NAN
        out["hist_avg_invoice_amount"] = avg
        out["amount_vs_customer_avg"] = own_cents / 100 / avg if n_posted and avg > 0 else NAN
        return out

    def _season_adjusted(self, paid: list, latest_first: list, month: int, f: dict) -> dict:
        """EWM of recent lateness minus each invoice's season effect, plus this one's."""
        grace = self.config.grace_days
        overall_late = f["hist_late_ratio"] if paid else 0.0
        overall_days = f["hist_avg_days_late"] if paid else 0.0

        def effect(m: int) -> tuple[float, float]:
            near = {m, m % 12 + 1, (m - 2) % 12 + 1}
            rows = [p for p in paid if p[4] in near]
            n_late = sum(1 for p in rows if p[2] > grace)
            days = sum(p[2] for p in rows)
            return ((n_late + 3.0 * overall_late) / (len(rows) + 3.0) - overall_late,
                    (days + 3.0 * overall_days) / (len(rows) + 3.0) - overall_days)

        out = {"hist_season_effect": effect(month)[0] if paid else NAN,
               "hist_season_amplitude": (max(effect(m)[0] for m in range(1, 13))
                                         - min(effect(m)[0] for m in range(1, 13))
                                         if paid else NAN)}
        for j, name in ((0, "late_ratio"), (1, "days_late")):
            num = den = 0.0
            for k, p in enumerate(latest_first):
                value = (1.0 if p[2] > grace else 0.0) if j == 0 else p[2]
                w = 0.5 ** (k / 3.0)
                num += w * (value - effect(p[4])[j])
                den += w
            adjusted = num / den + effect(month)[j] if den > 0 else NAN
            if j == 0 and den > 0:  # a share stays within 0 and 1
                adjusted = min(1.0, max(0.0, adjusted))
            out[f"hist_ewm_{name}_season_adj"] = adjusted
        return out

    def _master(self, cust: str, t: int, cust_open_cents: int) -> dict:
        best = None
        for valid_from, pos, row in self.master.get(cust, []):
            if valid_from <= t and (best is None or (valid_from, pos) >= (best[0], best[1])):
                best = (valid_from, pos, row)
        row = best[2] if best else {}
        limit = row.get("credit_limit")
        limit = NAN if limit is None or pd.isna(limit) else float(limit)
        return {
            "risk_category": _str(row.get("risk_category")),
            "credit_limit": limit,
            "credit_used_ratio": (cust_open_cents / 100) / limit if limit > 0 else NAN,
            "customer_segment": _str(row.get("customer_segment")),
            "collector": _str(row.get("collector")),
        }

    # ---------------------------------------------------------------------- labels ------------
    def labels(self, inv: str, t: int) -> dict:
        cfg = self.config
        due_day = _day(self.posting[inv]["due"])
        term = self.terminal(inv)
        if term is None or term["known"] > self.end:
            known_late = 1.0 if _day(self.end) - due_day > cfg.grace_days else NAN
            return {"label_late": NAN, "label_delay_bucket": None, "label_days_late": NAN,
                    "label_days_to_clear": NAN, "label_written_off": False, "censored": True,
                    "observed_days": (self.end - t) / DAY, "outcome_time": None,
                    "label_late_known": known_late}
        assert term["known"] > t, "labels must come from after t"
        days_late = _day(term["etime"]) - due_day
        written_off = term["act"] == A.INVOICE_WRITTEN_OFF.value
        late = written_off or days_late > cfg.grace_days
        edges = list(cfg.bucket_edges)
        if written_off:
            bucket = len(edges)
        elif not late:
            bucket = 0
        else:
            bucket = max(1, sum(1 for edge in edges if edge < days_late))
        days_to_clear = max(term["etime"] - t, 0) / DAY
        return {"label_late": float(late), "label_delay_bucket": bucket,
                "label_days_late": float(days_late), "label_days_to_clear": days_to_clear,
                "label_written_off": written_off, "censored": False,
                "observed_days": days_to_clear, "outcome_time": term["etime"],
                "label_late_known": float(late)}

    def is_open(self, inv: str, t: int) -> bool:
        post = self.posting.get(inv)
        term = self.terminal(inv)
        return post is not None and post["known"] <= t and (term is None or term["known"] > t)


# ---------------------------------------------------------------------- hand-built logs ------
def event_frame(rows: list[dict], last_refresh) -> pd.DataFrame:
    """A canonical event log from a few hand-written rows (missing columns are null)."""
    frame = pd.DataFrame(rows)
    for col in schema.EVENT_COLUMN_NAMES:
        if col not in frame:
            frame[col] = None
    frame["last_refresh"] = pd.Timestamp(last_refresh)
    kinds = {c.name: c.kind for c in schema.EVENT_COLUMNS}
    for col, kind in kinds.items():
        if kind == "datetime":
            frame[col] = pd.to_datetime(frame[col], format="mixed").astype("datetime64[us]")
        elif kind == "float":
            frame[col] = frame[col].astype("float64")
        elif kind == "int":
            frame[col] = frame[col].astype("Int8")
        elif kind == "bool":
            frame[col] = frame[col].fillna(False).astype(bool)
        else:
            frame[col] = frame[col].astype("str")
    return frame[list(schema.EVENT_COLUMN_NAMES)]


def invoice_rows(inv: str, cust: str, posted: str, due: str, amount: float, **extra) -> dict:
    """The posting row of an invoice."""
    return {"event_time": posted, "activity": A.INVOICE_POSTED.value, "invoice_id": inv,
            "customer_id": cust, "company_code": "1000", "net_due_date": due, "amount": amount,
            "payment_terms": "NT30", "document_type": "RV", **extra}


# ---------------------------------------------------------------------- adversarial log ------
def adversarial_ledger(seed: int, n_customers: int = 8, n_invoices: int = 160
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, master) with the awkward cases listed in the module docstring."""
    rng = random.Random(seed)
    start = pd.Timestamp("2024-01-01")
    end = pd.Timestamp("2024-12-31")
    rows: list[dict] = []
    master: list[dict] = []
    custs = [f"C{i:03d}" for i in range(n_customers)]
    for c in custs:
        when = start - pd.Timedelta(days=rng.randint(10, 300))
        for _ in range(rng.randint(1, 4)):
            master.append({"customer_id": c, "valid_from": when,
                           "risk_category": rng.choice(schema.RISK_CATEGORIES),
                           "credit_limit": float(rng.choice([0, 5_000, 50_000, 200_000])),
                           "customer_segment": rng.choice(schema.SEGMENTS),
                           "collector": rng.choice(["ANNA", "BOB", None])})
            when += pd.Timedelta(days=rng.randint(20, 200), hours=rng.randint(0, 23))
    case_no = 0

    def ev(inv, cust, when, act, **kw):
        lag = pd.Timedelta(hours=rng.choice([0, 0, 0, 5, 30, 100])) if rng.random() < 0.3 \
            else None
        rows.append({"event_time": when, "activity": act, "invoice_id": inv,
                     "customer_id": cust, "recorded_time": (when + lag) if lag is not None
                     else (pd.NaT if rng.random() < 0.5 else when), **kw})

    for i in range(n_invoices):
        inv = f"9{i:05d}"
        cust = rng.choice(custs)
        # Several invoices on the same instants so ties happen across and within invoices.
        posted = start + pd.Timedelta(days=rng.randint(0, 300), hours=rng.choice([0, 9, 9, 17]))
        terms = rng.choice(["NT30", "Z210", "NT15", "XX99", None])
        due = (posted + pd.Timedelta(days=rng.choice([0, 10, 30, 45]))).normalize()
        amount = round(rng.uniform(10, 20_000), 2)
        ev(inv, cust, posted, A.INVOICE_POSTED.value, amount=amount, net_due_date=due,
           payment_terms=terms, company_code=rng.choice(["1000", "2000"]), document_type="RV")
        now = posted
        open_amt = amount
        outcome = rng.random()
        n_steps = rng.randint(0, 7)
        for _ in range(n_steps):
            now = now + pd.Timedelta(days=rng.choice([0, 0, 1, 3, 9, 20]),
                                     hours=rng.choice([0, 0, 6]))
            kind = rng.random()
            if kind < 0.15:
                ev(inv, cust, now, A.DUNNING_RUN.value,
                   dunning_level=rng.choice([1, 2, 3, 4, None]))
            elif kind < 0.25:
                ev(inv, cust, now, A.COLLECTION_CONTACT.value)
            elif kind < 0.35:
                promised = (now + pd.Timedelta(days=rng.randint(0, 15))).normalize()
                ev(inv, cust, now, A.PROMISE_TO_PAY_CREATED.value, promised_date=promised,
                   amount=rng.choice([None, round(open_amt / 2, 2)]))
                if rng.random() < 0.5:
                    ev(inv, cust, promised + pd.Timedelta(days=1),
                       A.PROMISE_TO_PAY_BROKEN.value)
            elif kind < 0.5:
                case_no += 1
                case = rng.choice([f"D{case_no}", f"D{case_no}", None])
                ev(inv, cust, now, A.DISPUTE_CASE_CREATED.value, dispute_case_id=case,
                   amount=round(rng.uniform(1, open_amt), 2))
                if rng.random() < 0.6:
                    ev(inv, cust, now + pd.Timedelta(days=rng.choice([0, 2, 15])),
                       A.DISPUTE_CASE_RESOLVED.value, dispute_case_id=case)
            elif kind < 0.6:
                ev(inv, cust, now, A.PAYMENT_BLOCK_SET.value,
                   payment_block=rng.choice(["A", "R", " ", None]))
            elif kind < 0.7 and open_amt > 2:
                memo = round(rng.uniform(1, open_amt / 2), 2)
                ev(inv, cust, now, A.CREDIT_MEMO_POSTED.value, amount=memo, document_type="DG")
                open_amt = round(open_amt - memo, 2)
            elif open_amt > 2:
                pay = round(rng.uniform(1, open_amt / 2), 2)
                ev(inv, cust, now, A.INCOMING_PAYMENT_POSTED.value, amount=pay,
                   document_type="DZ")
                open_amt = round(open_amt - pay, 2)
                ev(inv, cust, now, A.RESIDUAL_ITEM_CREATED.value, amount=open_amt,
                   document_type="AB")
        if outcome < 0.6:
            when = now + pd.Timedelta(days=rng.randint(0, 80), hours=rng.choice([0, 11]))
            ev(inv, cust, when, A.INCOMING_PAYMENT_POSTED.value, amount=open_amt,
               document_type="DZ")
            ev(inv, cust, when + pd.Timedelta(days=rng.choice([0, 1, 3])),
               A.INVOICE_CLEARED.value, amount=0.0, clearing_document=f"CL{i}")
        elif outcome < 0.7:
            ev(inv, cust, now + pd.Timedelta(days=rng.randint(30, 200)),
               A.INVOICE_WRITTEN_OFF.value, amount=open_amt, is_written_off=True)
    rng.shuffle(rows)  # input order must not matter beyond the documented tie-break
    events = pd.DataFrame(rows)
    for col in ("event_time", "recorded_time", "net_due_date", "promised_date"):
        events[col] = pd.to_datetime(events[col]).astype("datetime64[us]")
    events["last_refresh"] = np.datetime64(end, "us")
    events["dunning_level"] = events["dunning_level"].astype("Int8")
    for col in ("activity", "invoice_id", "customer_id", "company_code", "payment_terms",
                "document_type", "dispute_case_id", "payment_block", "clearing_document"):
        events[col] = events[col].astype("str")
    events["is_written_off"] = events["is_written_off"].fillna(False).astype(bool)
    master_df = pd.DataFrame(master)
    master_df["valid_from"] = master_df["valid_from"].astype("datetime64[us]")
    for col in ("customer_id", "risk_category", "customer_segment", "collector"):
        master_df[col] = master_df[col].astype("str")
    return events, master_df


__all__ = ["Reference", "adversarial_ledger", "event_frame", "invoice_rows", "DAY"]
