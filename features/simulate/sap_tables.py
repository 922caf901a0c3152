"""A ledger written as SAP table extracts (BKPF, BSID, BSAD, BSEG, MHND/MHNK, dispute and promise
tables, contacts, CDHDR/CDPOS, KNA1/KNB1/KNKK, T001): the inverse of `features.ingest.sap`.

`ledger_to_sap_tables(events, master, ...)` turns an event log (canonical columns, as the
simulator writes it) and its master history into the tables an SAP system would hold, every
value as text in SAP's external formats (dates YYYYMMDD, times HHMMSS, timestamps
YYYYMMDDHHMMSS, ids with their leading zeros). Reading them back with `features.ingest.sap`
gives the same event log and master history: that is the round trip the tests prove.

How the events become documents (the accounting an SAP system would have done):
- invoice_posted -> an invoice document (BKPF, BLART of the event, BELNR = invoice_id) with one
  debit customer item (BSID/BSAD) carrying NETDT, ZFBDT/ZBDxT and ZTERM.
- incoming_payment_posted -> a payment document (DZ) with one credit item referencing the invoice
  (REBZG); credit_memo_posted -> a credit memo (DG) likewise.
- residual_item_created -> a clearing document (AB) with the residual debit item (REBZG = the
  invoice); it clears the items open until then (the invoice, the partial payment).
- invoice_cleared / invoice_written_off -> the clearing document AUGBL = clearing_document that
  clears every item still open; a write-off carries its own credit line with the write-off
  reason code (RSTGR) and a bad-debt G/L line (BSEG).
- Items are cleared by the first clearing at or after their posting (a residual item by the next
  one); items no clearing reaches are open (BSID).
- dunning_run -> MHND (and MHNK per account and run) on the invoice's open debit item;
  dispute_case_created -> SCMG_T_CASE_ATTR + UDM_CASE_ATTR00; dispute_case_resolved and
  payment_block_set -> CDHDR/CDPOS (STAT_ORDERNO, BSEG-ZLSPR); promise_to_pay_created ->
  UDM_P2P_ATTR; collection_contact -> UDM_CONTACT.
- The master history -> KNA1/KNB1/KNKK as of the extract and CDHDR/CDPOS for every change.
- The calculated activities (due date passed, promise broken) are not written: SAP has no record
  of them; the reader derives them.

`SIMULATOR_SAP_CONFIG` is the reader's configuration for what this writer writes (account groups,
the dunning run's time of day, the dunning user).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features import schema
from features.config.sap import SapConfig
from features.ingest.sap_mapping import TABLES_BY_NAME

A = schema.Activity
CLIENT = "100"
PAYMENT_BASE = 1_500_000_000
CREDIT_MEMO_BASE = 1_600_000_000
RESIDUAL_BASE = 1_700_000_000
CHANGE_BASE = 1
DISPUTE_STATUS_OPEN, DISPUTE_STATUS_RESOLVED = "10", "30"
WRITE_OFF_REASON = "W01"
CREDIT_CONTROL_AREA = "1000"
ACCOUNT_GROUPS: dict[str, str] = {"ZKEY": "key_account", "ZMID": "mid_market", "ZSME": "sme",
                                  "ZPUB": "public_sector", "ZICO": "intercompany"}
CURRENCIES: tuple[str, ...] = ("EUR", "USD", "GBP")
# What the reader needs to read this writer's tables back exactly.
SIMULATOR_SAP_CONFIG = SapConfig(account_group_segments=ACCOUNT_GROUPS,
                                 dunning_run_time="05:00:00", dunning_user="BATCH")
_SEGMENT_TO_GROUP = {v: k for k, v in ACCOUNT_GROUPS.items()}


# --- formats ----------------------------------------------------------------------------------
def _date(t: pd.Series) -> pd.Series:
    t = pd.Series(t)
    n = t.dt.year * 10000 + t.dt.month * 100 + t.dt.day
    return n.astype("Int64").astype("str").fillna("")


def _time(t: pd.Series) -> pd.Series:
    t = pd.Series(t)
    n = t.dt.hour * 10000 + t.dt.minute * 100 + t.dt.second
    return n.astype("Int64").astype("str").str.zfill(6).fillna("")


def _timestamp(t: pd.Series) -> pd.Series:
    return (_date(t) + _time(t)).where(pd.Series(t).notna(), "")


def _amount(x) -> pd.Series:
    x = pd.Series(np.round(np.asarray(x, dtype=float), 2))
    return x.map("{:.2f}".format).where(x.notna(), "")


def _year(t: pd.Series) -> pd.Series:
    return pd.Series(t).dt.year.astype("str")


def _numbers(base: int, n: int) -> pd.Series:
    return pd.Series(np.char.zfill((np.arange(n) + base).astype(str), 10))


def _text(s) -> pd.Series:
    return pd.Series(s, dtype="str").fillna("").reset_index(drop=True)


def _columns(table: str, frame: dict) -> pd.DataFrame:
    """Frame of strings in the mapping's field order (fields the writer does not fill are left
    out, as a partial SE16N export would)."""
    order = [f.name for f in TABLES_BY_NAME[table].fields if f.name in frame]
    extra = [k for k in frame if k not in order]
    return pd.DataFrame({k: _text(frame[k]) for k in order + extra})


# --- documents --------------------------------------------------------------------------------
def _docs(events: pd.DataFrame) -> pd.DataFrame:
    """One row per posting document: the event it comes from, its number, type and role."""
    ev = events
    act = ev["activity"]
    parts = []

    def add(mask, role: str, belnr: pd.Series | None, base: int | None, blart):
        rows = ev[mask.to_numpy()].sort_values(["event_time", "invoice_id"], kind="stable")
        rows = rows.assign(role=role)
        if belnr is None:
            rows["belnr"] = _numbers(base, len(rows)).to_numpy()
        else:
            rows["belnr"] = rows[belnr].to_numpy()
        rows["blart"] = rows["document_type"].fillna(blart) if blart else rows["document_type"]
        parts.append(rows)

    add(act.eq(A.INVOICE_POSTED), "invoice", "invoice_id", None, "RV")
    add(act.eq(A.INCOMING_PAYMENT_POSTED), "payment", None, PAYMENT_BASE, "DZ")
    add(act.eq(A.CREDIT_MEMO_POSTED), "credit_memo", None, CREDIT_MEMO_BASE, "DG")
    add(act.eq(A.RESIDUAL_ITEM_CREATED), "residual", None, RESIDUAL_BASE, "AB")
    add(act.eq(A.INVOICE_CLEARED), "clearing", "clearing_document", None, "AB")
    add(act.eq(A.INVOICE_WRITTEN_OFF), "write_off", "clearing_document", None, "AB")
    docs = pd.concat(parts, ignore_index=True)
    docs["gjahr"] = _year(docs["event_time"]).to_numpy()
    return docs


def ledger_to_sap_tables(events: pd.DataFrame, master: pd.DataFrame,
                         customers: pd.DataFrame | None = None,
                         currencies: dict[str, str] | None = None,
                         last_refresh: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """SAP tables (name -> frame of text) holding `events` and `master`. `customers` (the
    simulator's latent table) gives each customer's home company code for KNB1; `currencies`
    maps company codes to currency keys (default EUR, USD, GBP in company code order)."""
    ev = events.reset_index(drop=True)
    companies = sorted(ev["company_code"].dropna().unique())
    currencies = currencies or {c: CURRENCIES[i % len(CURRENCIES)]
                                for i, c in enumerate(companies)}
    if last_refresh is None:
        last_refresh = pd.Timestamp(ev["last_refresh"].max())
    posted = ev[ev["activity"].eq(A.INVOICE_POSTED)].set_index("invoice_id")
    inv_year = _year(posted["event_time"])
    inv_year.index = posted.index

    docs = _docs(ev)
    waers = docs["company_code"].map(currencies)
    tables: dict[str, pd.DataFrame] = {}
    tables["BKPF"] = _columns("BKPF", {
        "BUKRS": docs["company_code"], "BELNR": docs["belnr"], "GJAHR": docs["gjahr"],
        "BLART": docs["blart"], "BUDAT": _date(docs["event_time"]),
        "CPUDT": _date(docs["recorded_time"]), "CPUTM": _time(docs["recorded_time"]),
        "USNAM": docs["user_name"], "HWAER": waers, "WAERS": waers,
        "TCODE": docs["role"].map({"invoice": "VF01", "payment": "FF_5", "credit_memo": "VF01",
                                   "residual": "F-32", "clearing": "F.13",
                                   "write_off": "F-30"}),
    })

    # Customer items: every document but a pure clearing has one customer line for its invoice.
    clear = docs[docs["role"].isin(["residual", "clearing", "write_off"])][
        ["invoice_id", "event_time", "belnr"]].rename(columns={"event_time": "clear_time",
                                                               "belnr": "augbl"})
    items = docs[~docs["role"].eq("clearing")].reset_index(drop=True)
    debit = items["role"].isin(["invoice", "residual"])
    items["shkzg"] = np.where(debit, "S", "H")
    items["buzei"] = "001"
    items["created_by_clearing"] = items["role"].eq("residual")
    # Clearing instants per invoice: residual creations and the terminal clearing.
    clear = clear.sort_values("clear_time", kind="stable")
    items = items.assign(_pos=np.arange(len(items))).sort_values("event_time", kind="stable")
    # An item is cleared by the first clearing at or after its posting; a residual item by the
    # next one after the clearing that created it.
    parts = []
    residual = items["created_by_clearing"]
    for exact, mask in ((True, ~residual), (False, residual)):
        part = pd.merge_asof(items[mask.to_numpy()], clear, left_on="event_time",
                             right_on="clear_time", by="invoice_id", direction="forward",
                             allow_exact_matches=exact)
        parts.append(part)
    items = pd.concat(parts).sort_values("_pos").reset_index(drop=True)

    # Net due date fields of invoice items: ZFBDT + days = NETDT.
    inv = items["role"].eq("invoice")
    net_days = items["payment_terms"].map({k: t.net_days for k, t in schema.PAYMENT_TERMS.items()})
    disc_days = items["payment_terms"].map(
        {k: t.discount_days for k, t in schema.PAYMENT_TERMS.items()}).fillna(0)
    net_days = net_days.fillna((items["net_due_date"] - items["event_time"].dt.normalize()).dt.days)
    zfbdt = items["net_due_date"] - pd.to_timedelta(net_days, unit="D")
    zbd1t = np.where(disc_days > 0, disc_days, net_days)
    zbd2t = np.where(disc_days > 0, net_days, 0)

    # Dunning: the last run on each item gives its MANST/MADAT.
    dun = _on_open_debit_item(ev[ev["activity"].eq(A.DUNNING_RUN)], items)
    last_dun = dun.sort_values("event_time", kind="stable").drop_duplicates("_item", keep="last")
    last_dun = last_dun.set_index("_item")
    item_no = pd.Series(np.arange(len(items)))
    manst = item_no.map(last_dun["dunning_level"].astype("float")).astype("Int64")
    madat = item_no.map(last_dun["event_time"])

    # Payment blocks: the change documents and each item's block at the extract.
    blocks = _on_open_debit_item(ev[ev["activity"].eq(A.PAYMENT_BLOCK_SET)], items)
    blocks = blocks.sort_values("event_time", kind="stable")
    blocks["value_new"] = blocks["payment_block"].fillna("")
    blocks["value_old"] = blocks.groupby("_item")["value_new"].shift().fillna("")
    zlspr = item_no.map(blocks.drop_duplicates("_item", keep="last").set_index("_item")[
        "value_new"]).fillna("")

    is_cleared = items["augbl"].notna()
    write_off_line = items["role"].eq("write_off")
    item_frame = {
        "BUKRS": items["company_code"], "KUNNR": items["customer_id"], "BELNR": items["belnr"],
        "GJAHR": items["gjahr"], "BUZEI": items["buzei"], "SHKZG": items["shkzg"],
        "DMBTR": _amount(items["amount"]),
        "NETDT": _date(items["net_due_date"]).where(inv, ""),
        "ZFBDT": _date(zfbdt).where(inv, ""),
        "ZBD1T": pd.Series(zbd1t).astype("Int64").astype("str").where(inv, ""),
        "ZBD2T": pd.Series(zbd2t).astype("Int64").astype("str").where(inv, ""),
        "ZTERM": items["payment_terms"].where(inv, ""),
        "REBZG": items["invoice_id"].where(~inv, ""),
        "REBZJ": items["invoice_id"].map(inv_year).where(~inv, ""),
        "REBZZ": pd.Series("001", index=items.index).where(~inv, ""),
        "MANST": manst.astype("str").fillna(""), "MADAT": _date(madat),
        "ZLSPR": zlspr, "RSTGR": pd.Series(WRITE_OFF_REASON, index=items.index).where(
            write_off_line, ""),
        "AUGBL": items["augbl"].fillna(""),
        "AUGDT": _date(items["clear_time"]),
    }
    all_items = _columns("BSID", item_frame)
    tables["BSID"] = all_items[~is_cleared.to_numpy()].drop(columns=["AUGBL", "AUGDT"]) \
        .reset_index(drop=True)
    tables["BSAD"] = all_items[is_cleared.to_numpy()].reset_index(drop=True)

    # BSEG: the lines of write-off documents with their reason code (customer and G/L line).
    wo = items[write_off_line]
    tables["BSEG"] = pd.concat([
        _columns("BSEG", {"BUKRS": wo["company_code"], "BELNR": wo["belnr"], "GJAHR": wo["gjahr"],
                          "BUZEI": pd.Series("001", index=wo.index),
                          "KOART": pd.Series("D", index=wo.index),
                          "RSTGR": pd.Series(WRITE_OFF_REASON, index=wo.index)}),
        _columns("BSEG", {"BUKRS": wo["company_code"], "BELNR": wo["belnr"], "GJAHR": wo["gjahr"],
                          "BUZEI": pd.Series("002", index=wo.index),
                          "KOART": pd.Series("S", index=wo.index),
                          "RSTGR": pd.Series(WRITE_OFF_REASON, index=wo.index)}),
    ], ignore_index=True)
    tables["T001"] = _columns("T001", {"BUKRS": pd.Series(companies),
                                       "WAERS": pd.Series(companies).map(currencies)})

    # Dunning.
    tables["MHND"] = _columns("MHND", {
        "LAUFD": _date(dun["event_time"]), "LAUFI": pd.Series("WEEKLY", index=dun.index),
        "BUKRS": dun["company_code"], "KUNNR": dun["customer_id"], "BELNR": dun["_belnr"],
        "GJAHR": dun["_gjahr"], "BUZEI": pd.Series("001", index=dun.index),
        "MAHNN": dun["dunning_level"].astype("str"),
        "MAHNS": (dun["dunning_level"].astype("Int64") - 1).astype("str"),
    })
    head = dun.assign(laufd=_date(dun["event_time"]).to_numpy()).groupby(
        ["laufd", "customer_id"], sort=True)["dunning_level"].max().reset_index()
    tables["MHNK"] = _columns("MHNK", {"LAUFD": head["laufd"],
                                       "LAUFI": pd.Series("WEEKLY", index=head.index),
                                       "KUNNR": head["customer_id"],
                                       "MAHNS": head["dunning_level"].astype("str")})

    # Disputes.
    created = _on_open_debit_item(ev[ev["activity"].eq(A.DISPUTE_CASE_CREATED)], items)
    created = created.sort_values("event_time", kind="stable").reset_index(drop=True)
    guid = pd.Series([f"{i + 1:032X}" for i in range(len(created))])
    guid_of = dict(zip(created["dispute_case_id"], guid))
    resolved = ev[ev["activity"].eq(A.DISPUTE_CASE_RESOLVED)]
    resolved_ids = set(resolved["dispute_case_id"])
    tables["SCMG_T_CASE_ATTR"] = _columns("SCMG_T_CASE_ATTR", {
        "CASE_GUID": guid, "EXT_KEY": created["dispute_case_id"],
        "CASE_TYPE": pd.Series("F_DM", index=created.index),
        "CREATE_TIME": _timestamp(created["event_time"]), "CREATED_BY": created["user_name"],
        "STAT_ORDERNO": pd.Series(np.where(created["dispute_case_id"].isin(resolved_ids),
                                           DISPUTE_STATUS_RESOLVED, DISPUTE_STATUS_OPEN)),
    })
    tables["UDM_CASE_ATTR00"] = _columns("UDM_CASE_ATTR00", {
        "CASE_GUID": guid, "FIN_BUKRS": created["company_code"],
        "FIN_KUNNR": created["customer_id"], "FIN_DISPUTED_AMT": _amount(created["amount"]),
        "FIN_DISPUTE_CURR": created["company_code"].map(currencies),
        "BELNR": created["_belnr"], "GJAHR": created["_gjahr"],
    })

    # Promises and contacts.
    prom = _on_open_debit_item(ev[ev["activity"].eq(A.PROMISE_TO_PAY_CREATED)], items)
    prom = prom.sort_values("event_time", kind="stable").reset_index(drop=True)
    tables["UDM_P2P_ATTR"] = _columns("UDM_P2P_ATTR", {
        "CASE_GUID": pd.Series([f"{(1 << 124) + i + 1:032X}" for i in range(len(prom))]),
        "BUKRS": prom["company_code"], "KUNNR": prom["customer_id"], "BELNR": prom["_belnr"],
        "GJAHR": prom["_gjahr"], "PROMISE_DATE": _date(prom["promised_date"]),
        "PROMISED_AMT": _amount(prom["amount"]),
        "PROMISED_CURR": prom["company_code"].map(currencies),
        "CREATE_TIME": _timestamp(prom["event_time"]), "CREATED_BY": prom["user_name"],
    })
    con = _on_open_debit_item(ev[ev["activity"].eq(A.COLLECTION_CONTACT)], items)
    con = con.sort_values("event_time", kind="stable").reset_index(drop=True)
    tables["UDM_CONTACT"] = _columns("UDM_CONTACT", {
        "BUKRS": con["company_code"], "KUNNR": con["customer_id"], "BELNR": con["_belnr"],
        "GJAHR": con["_gjahr"], "CREATE_TIME": _timestamp(con["event_time"]),
        "CREATED_BY": con["user_name"],
    })

    # Change documents: payment blocks, dispute resolutions, master changes.
    res = resolved.assign(guid=resolved["dispute_case_id"].map(guid_of))
    changes = [
        pd.DataFrame({
            "OBJECTCLAS": "BELEG",
            "OBJECTID": (CLIENT + blocks["company_code"] + blocks["_belnr"] + blocks["_gjahr"]),
            "TABNAME": "BSEG",
            "TABKEY": (CLIENT + blocks["company_code"] + blocks["_belnr"] + blocks["_gjahr"]
                       + "001"),
            "FNAME": "ZLSPR", "VALUE_OLD": blocks["value_old"], "VALUE_NEW": blocks["value_new"],
            "USERNAME": blocks["user_name"], "time": blocks["event_time"]}),
        pd.DataFrame({
            "OBJECTCLAS": "SCASE", "OBJECTID": res["guid"], "TABNAME": "SCMG_T_CASE_ATTR",
            "TABKEY": CLIENT + res["guid"], "FNAME": "STAT_ORDERNO",
            "VALUE_OLD": DISPUTE_STATUS_OPEN, "VALUE_NEW": DISPUTE_STATUS_RESOLVED,
            "USERNAME": res["user_name"], "time": res["event_time"]}),
        _master_changes(master),
    ]
    ch = pd.concat(changes, ignore_index=True).sort_values("time", kind="stable")
    ch = ch.reset_index(drop=True)
    ch["CHANGENR"] = _numbers(CHANGE_BASE, len(ch)).to_numpy()
    tables["CDHDR"] = _columns("CDHDR", {
        "OBJECTCLAS": ch["OBJECTCLAS"], "OBJECTID": ch["OBJECTID"], "CHANGENR": ch["CHANGENR"],
        "USERNAME": ch["USERNAME"], "UDATE": _date(ch["time"]), "UTIME": _time(ch["time"])})
    tables["CDPOS"] = _columns("CDPOS", {
        k: ch[k] for k in ("OBJECTCLAS", "OBJECTID", "CHANGENR", "TABNAME", "TABKEY", "FNAME",
                           "VALUE_NEW", "VALUE_OLD")} | {"CHNGIND": pd.Series("U", index=ch.index)})

    tables.update(_master_tables(master, ev, customers))
    tables["EXTRACT"] = _columns("EXTRACT", {
        "LOGSYS": pd.Series([str(ev["source_system"].dropna().iloc[0]) if len(ev) else "SAP"]),
        "DATUM": _date(pd.Series([last_refresh])), "UZEIT": _time(pd.Series([last_refresh]))})
    return tables


def _on_open_debit_item(rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Each row with the invoice's debit item open at its time (the invoice, or the latest
    residual item created by then): `_item` (row of `items`), `_belnr`, `_gjahr`."""
    debit = items[items["role"].isin(["invoice", "residual"])]
    debit = pd.DataFrame({"invoice_id": debit["invoice_id"].to_numpy(),
                          "item_time": debit["event_time"].to_numpy(),
                          "_item": debit.index.to_numpy(), "_belnr": debit["belnr"].to_numpy(),
                          "_gjahr": debit["gjahr"].to_numpy()}).sort_values("item_time",
                                                                            kind="stable")
    left = rows.assign(_pos=np.arange(len(rows))).sort_values("event_time", kind="stable")
    out = pd.merge_asof(left, debit, left_on="event_time", right_on="item_time", by="invoice_id",
                        direction="backward")
    return out.sort_values("_pos").drop(columns=["_pos", "item_time"]).reset_index(drop=True)


_MASTER_FIELDS = (("risk_category", "KNKK", "CTLPC", "KLIM"),
                  ("credit_limit", "KNKK", "KLIMK", "KLIM"),
                  ("customer_segment", "KNA1", "KTOKD", "DEBI"),
                  ("collector", "KNB1", "SACHP", "DEBI"),
                  ("payment_terms", "KNB1", "ZTERM", "DEBI"))


def _master_text(column: str, values: pd.Series) -> pd.Series:
    if column == "credit_limit":
        return _amount(values)
    if column == "customer_segment":
        return values.map(lambda s: _SEGMENT_TO_GROUP.get(s, s) if isinstance(s, str) else s)
    return values.fillna("").astype("str")


def _master_changes(master: pd.DataFrame) -> pd.DataFrame:
    m = master.sort_values(["customer_id", "valid_from"], kind="stable").reset_index(drop=True)
    same_customer = m["customer_id"].eq(m["customer_id"].shift())
    parts = []
    for column, table, field, objclass in _MASTER_FIELDS:
        text = _master_text(column, m[column])
        old = text.shift()
        changed = same_customer & text.ne(old)
        rows = m[changed]
        key = CLIENT + rows["customer_id"]
        if table == "KNKK":
            key = key + CREDIT_CONTROL_AREA
        parts.append(pd.DataFrame({
            "OBJECTCLAS": objclass, "OBJECTID": rows["customer_id"], "TABNAME": table,
            "TABKEY": key, "FNAME": field, "VALUE_OLD": old[changed], "VALUE_NEW": text[changed],
            "USERNAME": "CREDIT_MGMT", "time": rows["valid_from"]}))
    return pd.concat(parts, ignore_index=True)


def _master_tables(master: pd.DataFrame, events: pd.DataFrame,
                   customers: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    m = master.sort_values(["customer_id", "valid_from"], kind="stable")
    first = m.drop_duplicates("customer_id", keep="first").set_index("customer_id")
    last = m.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    ids = pd.Series(last.index)
    if customers is not None and "home_company_code" in customers:
        home = customers.set_index("customer_id")["home_company_code"]
    else:
        home = events.groupby("customer_id")["company_code"].agg(lambda s: s.mode().iloc[0])
    return {
        "KNA1": _columns("KNA1", {
            "KUNNR": ids,
            "KTOKD": _master_text("customer_segment", last["customer_segment"]).to_numpy(),
            "ERDAT": _date(first["valid_from"]).to_numpy()}),
        "KNB1": _columns("KNB1", {
            "KUNNR": ids, "BUKRS": ids.map(home),
            "SACHP": last["collector"].to_numpy(), "ZTERM": last["payment_terms"].to_numpy()}),
        "KNKK": _columns("KNKK", {
            "KUNNR": ids, "KKBER": pd.Series(CREDIT_CONTROL_AREA, index=ids.index),
            "CTLPC": last["risk_category"].to_numpy(),
            "KLIMK": _amount(last["credit_limit"]).to_numpy()}),
    }


def write_sap_tables(tables: dict[str, pd.DataFrame], folder: str | Path,
                     fmt: str = "csv") -> dict[str, Path]:
    """Write each table as <NAME>.csv (text, as SE16N exports it) or <NAME>.parquet (strings)."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', not {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, frame in tables.items():
        for stale in (folder / f"{name}.csv", folder / f"{name}.parquet"):
            stale.unlink(missing_ok=True)
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        out[name] = path
    return out


def write_ledger_as_sap(ledger, folder: str | Path, fmt: str = "csv") -> dict[str, Path]:
    """`paydelay simulate --format sap`: a simulated Ledger as SAP table extracts."""
    tables = ledger_to_sap_tables(ledger.events, ledger.master, ledger.customers,
                                  last_refresh=ledger.last_refresh)
    return write_sap_tables(tables, folder, fmt)


__all__ = ["ledger_to_sap_tables", "write_sap_tables", "write_ledger_as_sap", "write_sap_sample",
           "SIMULATOR_SAP_CONFIG", "ACCOUNT_GROUPS"]


# --- the committed sample (data/sample/sap/) ---------------------------------------------------
SAMPLE_SEED = 2  # the first seed whose sample shows all fourteen activities
SAMPLE_SIZE = {"n_invoices": 300, "n_customers": 30, "months": 12}


def sap_sample_tables(seed: int = SAMPLE_SEED) -> dict[str, pd.DataFrame]:
    """The small SAP extract committed under data/sample/sap/ (a few hundred documents of a
    simulated world), regenerated by `write_sap_sample`."""
    from features.config.simulator import SimulatorConfig
    from features.simulate.ledger import simulate_ledger

    ledger = simulate_ledger(SimulatorConfig(**SAMPLE_SIZE), seed=seed)
    return ledger_to_sap_tables(ledger.events, ledger.master, ledger.customers,
                                last_refresh=ledger.last_refresh)


def write_sap_sample(folder: str | Path, seed: int = SAMPLE_SEED) -> dict[str, Path]:
    return write_sap_tables(sap_sample_tables(seed), folder, "csv")
