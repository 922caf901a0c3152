/* The collector's worklist page: load a worklist - a file as a worklist engine sends it, or a
   collector's open items from the latest batch scoring (POST /latest_worklist) - rank it with
   POST /rerank, explain one invoice with POST /explain. No external asset; the token stays in
   this tab (sessionStorage) and goes only into the Authorization header, and the collector
   only into a request body, never into a URL. Data is written into the page with textContent
   only. */
"use strict";
(function () {
  const FIELDS = JSON.parse(document.getElementById("item-fields").textContent);
  const TOKEN_KEY = "paydelay.token";
  const $ = (id) => document.getElementById(id);
  const state = { items: [], asOf: null, label: null, response: null };

  const tokenInput = $("token");
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  let tokenPause = null;
  tokenInput.addEventListener("input", () => {
    sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
    clearTimeout(tokenPause);  // ask for the batch once the collector stops typing
    tokenPause = setTimeout(findLatest, 400);
  });

  function status(text, error) {
    const el = $("status");
    el.textContent = text;
    el.className = error ? "error" : "";
  }

  function pct(p) { return p == null ? "" : (p * 100).toFixed(1) + " %"; }
  function points(w) { return (w >= 0 ? "+" : "") + (w * 100).toFixed(1) + " pts"; }
  function money(x) {
    return x == null ? "" : Number(x).toLocaleString("en-US", { minimumFractionDigits: 2,
                                                               maximumFractionDigits: 2 });
  }

  function cell(tr, text, cls, value) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    if (value !== undefined) td.dataset.value = String(value);
    tr.appendChild(td);
    return td;
  }

  async function loadMetadata() {
    try {
      const r = await fetch("/metadata", { cache: "no-store" });
      const meta = await r.json();
      if (meta && meta.p_very_late_label) {
        state.label = meta.p_very_late_label;
        const nice = meta.p_very_late_label.charAt(0).toUpperCase()
          + meta.p_very_late_label.slice(1);
        document.querySelectorAll(".vl-label").forEach((el) => { el.textContent = meta.p_very_late_label; });
        document.querySelectorAll(".vl-head").forEach((el) => { el.textContent = nice; });
      }
    } catch (e) { /* the page works without it; the default label stays */ }
  }

  // --- reading a worklist file -------------------------------------------------------------
  function parseCsv(text) {
    const rows = [];
    let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); field = "";
        if (row.some((v) => v !== "")) rows.push(row);
        row = [];
      } else field += c;
    }
    row.push(field);
    if (row.some((v) => v !== "")) rows.push(row);
    if (!rows.length) return [];
    const head = rows[0].map((h) => h.trim());
    return rows.slice(1).map((r) => Object.fromEntries(head.map((h, j) => [h, r[j] ?? ""])));
  }

  function typed(name, raw) {
    const kind = FIELDS[name];
    if (raw === null || raw === undefined) return null;
    if (typeof raw !== "string") return raw;  // JSON: as sent
    const v = raw.trim();
    if (kind === undefined) return v;
    if (v === "") return kind === "bool" ? false : (kind.startsWith("int") ? 0 : null);
    if (kind === "float64") return Number(v);
    if (kind.startsWith("int")) return parseInt(v, 10);
    if (kind === "bool") return ["true", "1", "yes", "x"].includes(v.toLowerCase());
    return v;  // strings and date-times as written
  }

  function toItems(records) {
    return records.map((rec) => {
      const item = {};
      for (const [k, v] of Object.entries(rec)) {
        if (k in FIELDS) item[k] = typed(k, v);
      }
      return item;
    });
  }

  async function readWorklist(file) {
    const text = await file.text();
    const name = (file.name || "").toLowerCase();
    if (name.endsWith(".json") || text.trim().startsWith("{") || text.trim().startsWith("[")) {
      const data = JSON.parse(text);
      const items = Array.isArray(data) ? data : data.items;
      if (!Array.isArray(items)) throw new Error("the JSON file has no items list");
      return { items: items, asOf: Array.isArray(data) ? null : (data.as_of || null) };
    }
    return { items: toItems(parseCsv(text)), asOf: null };
  }

  // --- calling the API --------------------------------------------------------------------
  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    const token = tokenInput.value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch(path, { method: "POST", headers: headers, body: JSON.stringify(body),
                                  cache: "no-store", credentials: "omit" });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const detail = (data.detail || []).slice(0, 3)
        .map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
      const err = new Error(r.status + " " + (data.error || "request refused")
                            + (detail ? " (" + detail + ")" : ""));
      err.status = r.status;
      throw err;
    }
    return data;
  }

  // Ranking is the same for an upload and a batch: these items, as of that time, via /rerank.
  async function rank(items, asOf, ledger, origin) {
    state.items = items;
    const body = { items: items };
    if (asOf) body.as_of = asOf;
    if (ledger) body.ledger = ledger;
    const cap = parseInt($("capacity").value, 10);
    if (cap > 0) body.capacity = cap;
    const resp = await post("/rerank", body);
    render(resp);
    status(resp.items.length + " items ranked" + (origin ? " (" + origin + ")" : "") + ".");
  }

  // --- the latest batch-scored worklist ---------------------------------------------------
  function latestOff(text) {
    $("latest-button").disabled = true;
    $("collector").disabled = true;
    $("latest-note").textContent = "Latest batch-scored worklist: " + text;
  }

  async function findLatest() {
    try {
      const batch = await post("/latest_worklist", {});
      const picker = $("collector");
      const chosen = picker.value;
      picker.replaceChildren(...batch.collectors.map((name) => {
        const opt = document.createElement("option");
        opt.value = name;
        opt.textContent = name;
        return opt;
      }));
      if (batch.collectors.includes(chosen)) picker.value = chosen;
      picker.disabled = $("latest-button").disabled = batch.collectors.length === 0;
      $("latest-note").textContent = "Latest batch-scored worklist: scored as of "
        + batch.as_of.slice(0, 10) + (batch.ledger ? " (ledger " + batch.ledger + ")" : "")
        + ", " + batch.collectors.length + " collector(s). Pick yours: your open items are "
        + "ranked as of that date, exactly as an uploaded worklist is.";
    } catch (e) {
      latestOff(e.status === 404
        ? "none yet. Batch scoring (paydelay score) writes one; upload the worklist file "
          + "meanwhile."
        : e.status === 401 ? "enter your token to see whether one exists."
        : "not available (" + e.message + ").");
    }
  }

  $("latest-button").addEventListener("click", async () => {
    const collector = $("collector").value;
    if (!collector) { status("Pick a collector first.", true); return; }
    status("Loading the latest batch-scored worklist ...");
    try {
      const batch = await post("/latest_worklist", { collector: collector });
      if (!batch.items.length) {
        status(collector + " has no open item in the latest batch (as of "
               + batch.as_of.slice(0, 10) + ").");
        return;
      }
      const cut = batch.n_items > batch.items.length
        ? "; the first " + batch.items.length + " of " + batch.n_items : "";
      await rank(batch.items, batch.as_of, batch.ledger,
                 "latest batch, " + collector + ", as of " + batch.as_of.slice(0, 10) + cut);
    } catch (e) {
      status(e.message, true);
    }
  });

  // --- the list ---------------------------------------------------------------------------
  function render(resp) {
    state.response = resp;
    const tbody = document.querySelector("#worklist tbody");
    tbody.replaceChildren();
    for (const it of resp.items) {
      const tr = document.createElement("tr");
      tr.dataset.invoice = it.invoice_id;
      if (!it.in_capacity) tr.className = "beyond";
      cell(tr, String(it.rank), "num rank", it.rank);
      cell(tr, String(it.rule_rank), "num rule-rank", it.rule_rank);
      cell(tr, it.invoice_id, "invoice");
      cell(tr, it.customer_id, "customer");
      cell(tr, money(it.open_amount), "num open-amount", it.open_amount);
      cell(tr, String(Math.round(it.days_overdue)), "num days-overdue", it.days_overdue);
      cell(tr, pct(it.p_late), "num p-late", it.p_late);
      cell(tr, pct(it.p_very_late), "num p-very-late", it.p_very_late);
      cell(tr, money(it.expected_amount_at_risk), "num at-risk", it.expected_amount_at_risk);
      cell(tr, it.pay_date_p10 && it.pay_date_p90
        ? it.pay_date_p10 + " to " + it.pay_date_p90 + " (most likely " + it.pay_date_p50 + ")"
        : "", "window");
      const td = cell(tr, "", "reasons");
      const ul = document.createElement("ul");
      ul.className = "reasons";
      for (const r of it.reasons) {
        const li = document.createElement("li");
        li.className = r.weight >= 0 ? "up" : "down";
        li.dataset.weight = String(r.weight);
        li.textContent = r.sentence;
        ul.appendChild(li);
      }
      td.appendChild(ul);
      tr.addEventListener("click", () => explain(it.invoice_id));
      tbody.appendChild(tr);
    }
    const s = resp.summary;
    const summary = $("summary");
    const k = s.capacity == null ? s.n_items : Math.min(s.capacity, s.n_items);
    summary.textContent = s.n_items + " open items ranked as of " + resp.as_of + ". The first "
      + k + " calls cover " + money(s.amount_at_risk_in_capacity) + " of "
      + money(s.amount_at_risk_total) + " expected amount at risk (the rule strategy's first "
      + k + ": " + money(s.rule_amount_at_risk_in_capacity)
      + ", by this model's own estimate). Click an invoice for every factor behind its rank.";
    summary.hidden = false;
    $("list").hidden = false;
    $("detail").hidden = true;
  }

  // --- one invoice: the waterfall ---------------------------------------------------------
  function waterfall(exp) {
    const box = $("waterfall");
    box.replaceChildren();
    const contribs = exp.contributions.slice().sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    const shown = contribs.slice(0, 12);
    const rest = contribs.slice(12).reduce((acc, c) => acc + c.weight, 0);
    const steps = shown.map((c) => ({ text: c.sentence, weight: c.weight, feature: c.feature }));
    if (contribs.length > 12) steps.push({ text: "All other factors together", weight: rest, feature: "" });
    let level = exp.base_probability;
    const rows = [{ text: "Base rate (an average item)", from: 0, to: level, total: true }];
    for (const st of steps) {
      rows.push({ text: st.text, from: level, to: level + st.weight, weight: st.weight,
                  feature: st.feature });
      level += st.weight;
    }
    rows.push({ text: "This invoice: " + (state.label || "chance of paying very late"),
                from: 0, to: exp.item.p_very_late, total: true });
    for (const r of rows) {
      const div = document.createElement("div");
      div.className = "wf-row";
      if (r.feature) div.dataset.feature = r.feature;
      const label = document.createElement("span");
      label.textContent = r.text;
      const track = document.createElement("div");
      track.className = "wf-track";
      const bar = document.createElement("div");
      const lo = Math.max(0, Math.min(r.from, r.to)), hi = Math.min(1, Math.max(r.from, r.to));
      bar.className = "wf-bar " + (r.total ? "total" : (r.weight >= 0 ? "up" : "down"));
      bar.style.left = (lo * 100) + "%";
      bar.style.width = Math.max(0.3, (hi - lo) * 100) + "%";
      track.appendChild(bar);
      const value = document.createElement("span");
      value.className = "wf-value";
      value.textContent = r.total ? pct(r.to) : points(r.weight);
      if (!r.total) value.dataset.weight = String(r.weight);
      div.append(label, track, value);
      box.appendChild(div);
    }
  }

  async function explain(invoiceId) {
    const item = state.items.find((it) => String(it.invoice_id) === String(invoiceId));
    if (!item) return;
    status("Explaining invoice " + invoiceId + " ...");
    try {
      const exp = await post("/explain", { as_of: state.response.as_of, item: item });
      $("detail-title").textContent = "Invoice " + exp.item.invoice_id + " of customer "
        + exp.item.customer_id;
      $("detail-summary").textContent = (state.label || "Chance of paying very late")
        + ": " + pct(exp.item.p_very_late) + " (base rate " + pct(exp.base_probability)
        + "); chance late " + pct(exp.item.p_late) + "; expected amount at risk "
        + money(exp.item.expected_amount_at_risk) + ". Each bar is a factor's weight in "
        + "percentage points.";
      waterfall(exp);
      $("detail").hidden = false;
      $("detail").scrollIntoView();
      status("Invoice " + invoiceId + ": every factor behind its rank.");
    } catch (e) {
      status(e.message, true);
    }
  }

  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });

  $("load-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("file").files[0];
    if (!file) { status("Choose a worklist file first.", true); return; }
    status("Ranking ...");
    try {
      const wl = await readWorklist(file);
      await rank(wl.items, $("as-of").value || wl.asOf, null, "");
    } catch (e) {
      status(e.message, true);
    }
  });

  loadMetadata();
  findLatest();
})();
