"""The collector's worklist page in a real browser against the real service.

Scores the session's ledger in a batch (training.batch_score, what `paydelay score` runs) into a
temporary scores folder, starts `bentoml serve` on the session's registered model with a bearer
token and that folder ($PAYDELAY_SCORES_DIR), opens /worklist in headless Chromium (Debian's
`chromium` and `chromium-driver`), types the token and loads a worklist both ways a collector
can: uploading a file as a worklist engine would send it (the /rerank JSON body, and a CSV of the
same items), and picking a collector of the latest batch-scored worklist. Each time the page's
order, numbers and reasons are checked against the API's own answer to the same request; one
invoice's waterfall is checked against /explain. The screenshots are kept in tests/artifacts/
(git-ignored) for a person to look at.

It does not skip: without chromium and chromedriver it fails, naming what to install
(`make browser`, part of `make test`, installs them).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest


pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or CHROMIUM
    driver_path = shutil.which("chromedriver") or CHROMEDRIVER
    missing = [p for p in (binary, driver_path) if not Path(p).exists()]
    assert not missing, (f"{missing} not found: install Debian's chromium and chromium-driver "
                         "(`make browser` does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1600,1200", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _load(browser, server, path: Path, capacity: int | None = None, open_page: bool = True):
    """Load a worklist file through the page (open_page=False: on the page as it is, e.g. with
    an as-of already typed) and return the ranked table's rows."""
    from selenium.webdriver.common.by import By

    if open_page:
        browser.get(f"{server.url}/worklist")
    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(server.token)
    browser.find_element(By.ID, "file").send_keys(str(path))
    if capacity is not None:
        cap = browser.find_element(By.ID, "capacity")
        cap.clear()
        cap.send_keys(str(capacity))
    browser.find_element(By.ID, "load-button").click()
    _wait(browser, lambda d: "items ranked" in d.find_element(By.ID, "status").text
          or "error" in (d.find_element(By.ID, "status").get_attribute("class") or ""))
    status = browser.find_element(By.ID, "status")
    assert "items ranked" in status.text, status.text
    return browser.find_elements(By.CSS_SELECTOR, "#worklist tbody tr")


# The ranked table as the page shows it, read in one call (a call per cell would cost seconds).
_READ_TABLE = """
return Array.from(document.querySelectorAll('#worklist tbody tr')).map((tr) => {
  const cells = {};
  tr.querySelectorAll('td').forEach((td) => {
    const name = td.className.split(' ').filter((c) => c !== 'num')[0];
    cells[name] = {text: td.innerText, value: td.dataset.value};
  });
  return {invoice: tr.dataset.invoice, beyond: tr.classList.contains('beyond'), cells: cells,
          reasons: Array.from(tr.querySelectorAll('td.reasons li')).map((li) => li.innerText)};
});
"""


def _assert_ranked_as(browser, api) -> None:
    """The page's ranked table is the API's answer: order, numbers and reasons."""
    rows = browser.execute_script(_READ_TABLE)
    assert [r["invoice"] for r in rows] == [it["invoice_id"] for it in api["items"]]
    for row, it in zip(rows, api["items"], strict=True):
        cells = row["cells"]
        assert float(cells["p-very-late"]["value"]) == pytest.approx(it["p_very_late"])
        assert cells["p-very-late"]["text"] == f"{it['p_very_late'] * 100:.1f} %"
        assert cells["p-late"]["text"] == f"{it['p_late'] * 100:.1f} %"
        assert float(cells["at-risk"]["value"]) == pytest.approx(it["expected_amount_at_risk"])
        assert float(cells["open-amount"]["value"]) == pytest.approx(it["open_amount"])
        assert int(cells["rank"]["text"]) == it["rank"]
        assert int(cells["rule-rank"]["text"]) == it["rule_rank"]
        assert it["pay_date_p10"] in cells["window"]["text"]
        assert row["reasons"] == [r["sentence"] for r in it["reasons"]]
        assert all("points)" in text for text in row["reasons"])
        assert row["beyond"] is not it["in_capacity"]


def test_the_page_ranks_an_uploaded_worklist_as_the_api_does(browser, server, worklist,
                                                            tmp_path):
    from selenium.webdriver.common.by import By

    body = {"as_of": worklist["as_of"], "items": worklist["items"][:40]}
    path = tmp_path / "worklist.json"
    path.write_text(json.dumps(body))
    with server.client() as client:
        api = client.post("/rerank", json={**body, "capacity": 10}).json()
        meta = client.get("/metadata").json()

    rows = _load(browser, server, path, capacity=10)
    assert len(rows) == len(api["items"]) == 40
    # the order, the numbers and the reasons are the API's
    _assert_ranked_as(browser, api)
    # the ranking probability is named in collector language, from the served contract
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#worklist th")]
    assert meta["p_very_late_label"].lower() in [h.lower() for h in heads]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "worklist_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    # one invoice: the waterfall is /explain's, every factor's weight from the base rate
    first = api["items"][0]
    rows[0].click()
    _wait(browser, lambda d: d.find_element(By.ID, "detail").is_displayed()
          and d.find_elements(By.CSS_SELECTOR, "#waterfall .wf-row"))
    item = next(i for i in body["items"] if i["invoice_id"] == first["invoice_id"])
    with server.client() as client:
        exp = client.post("/explain", json={"as_of": api["as_of"], "item": item}).json()
    bars = browser.find_elements(By.CSS_SELECTOR, "#waterfall .wf-row[data-feature]")
    top = sorted(exp["contributions"], key=lambda c: -abs(c["weight"]))[:len(bars)]
    assert [b.get_attribute("data-feature") for b in bars] == [c["feature"] for c in top]
    summary = browser.find_element(By.ID, "detail-summary").text
    assert f"{exp['item']['p_very_late'] * 100:.1f} %" in summary
    assert f"{exp['base_probability'] * 100:.1f} %" in summary
    detail = ARTIFACTS / "worklist_detail.png"
    browser.save_screenshot(str(detail))
    print(f"screenshot: {detail}")
    assert server.token not in browser.current_url  # the token never reaches a URL


def test_a_csv_worklist_ranks_like_its_json(browser, server, worklist, tmp_path):
    items = worklist["items"][:25]
    path = tmp_path / "worklist.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(items[0]))
        writer.writeheader()
        for it in items:
            writer.writerow({k: ("" if v is None else ("true" if v is True else
                                                       "false" if v is False else v))
                             for k, v in it.items()})
    with server.client() as client:
        api = client.post("/rerank", json={"as_of": worklist["as_of"], "items": items}).json()
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/worklist")
    browser.find_element(By.ID, "as-of").send_keys("")  # the page sends as_of when typed
    browser.execute_script("document.getElementById('as-of').value = arguments[0];",
                           worklist["as_of"][:19])
    rows = _load(browser, server, path, open_page=False)
    assert [r.get_attribute("data-invoice") for r in rows] == [
        it["invoice_id"] for it in api["items"]]


def test_the_latest_batch_scored_worklist_ranks_as_the_api_does(browser, server, batch):
    """A collector picks their name and loads the batch's open items: the page ranks them
    through /rerank as of the batch's date, exactly as the API ranks the same items."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    collector = max(batch.worklists, key=lambda c: len(pd.read_csv(batch.worklists[c])))
    with server.client() as client:
        latest = client.post("/latest_worklist", json={"collector": collector})
        assert latest.status_code == 200, latest.text
        latest = latest.json()
        api = client.post("/rerank", json={"as_of": latest["as_of"], "items": latest["items"],
                                           "ledger": latest["ledger"], "capacity": 10}).json()
    with server.client(token=False) as client:  # guarded like every API route
        assert client.post("/latest_worklist", json={}).status_code == 401
    # the batch's items of that collector, in its worklist's order, as of its date
    worklist = pd.read_csv(batch.worklists[collector], dtype={"invoice_id": str})
    assert [it["invoice_id"] for it in latest["items"]] == worklist["invoice_id"].tolist()
    assert latest["as_of"] == batch.as_of.isoformat() == api["as_of"]
    assert latest["collectors"] == sorted(batch.worklists)

    # without a token the page cannot tell, and says so; with it, the control comes alive
    browser.get(f"{server.url}/worklist")
    browser.execute_script("sessionStorage.clear();")
    browser.get(f"{server.url}/worklist")
    note = browser.find_element(By.ID, "latest-note")
    _wait(browser, lambda d: "token" in note.text)
    assert not browser.find_element(By.ID, "latest-button").is_enabled()
    browser.find_element(By.ID, "token").send_keys(server.token)
    _wait(browser, lambda d: d.find_element(By.ID, "latest-button").is_enabled())
    assert batch.as_of.strftime("%Y-%m-%d") in note.text
    picker = Select(browser.find_element(By.ID, "collector"))
    assert [o.get_attribute("value") for o in picker.options] == latest["collectors"]
    picker.select_by_value(collector)
    cap = browser.find_element(By.ID, "capacity")
    cap.clear()
    cap.send_keys("10")
    browser.find_element(By.ID, "latest-button").click()
    _wait(browser, lambda d: "items ranked" in d.find_element(By.ID, "status").text
          or "error" in (d.find_element(By.ID, "status").get_attribute("class") or ""))
    status = browser.find_element(By.ID, "status").text
    assert "items ranked" in status and collector in status, status
    rows = browser.find_elements(By.CSS_SELECTOR, "#worklist tbody tr")
    assert len(rows) == len(api["items"]) == len(worklist) > 10
    _assert_ranked_as(browser, api)  # the calls beyond today's 10 greyed, as the API says
    assert api["summary"]["capacity"] == 10
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "worklist_latest_batch.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    # neither the token nor the collector reaches a URL
    assert server.token not in browser.current_url and collector not in browser.current_url


def test_the_page_and_its_assets_fetch_nothing_from_elsewhere(server):
    with server.client(token=False) as client:
        for path in ("/worklist", "/worklist/app.js", "/worklist/style.css"):
            r = client.get(path)
            assert r.status_code == 200
            assert "http://" not in r.text and "https://" not in r.text
