#!/usr/bin/env python3
"""Drives the page of `tarjama serve` in headless Chromium and checks what an editor sees.

    python page_test.py BASE_URL SEED_FILE OUT_DIR

BASE_URL is a running server (http://127.0.0.1:PORT), SEED_FILE an Arabic article
(seeds/*.txt), OUT_DIR where the screenshots go. Needs Selenium with Debian's chromium
and chromedriver (scripts/install_clients.sh). Exit code 0 only when every check passes;
each failed check is printed.

Checks:
- Translate: the button is disabled while the page works; then one `.pair` row per
  sentence, in order; each row's `.ar` cell holds exactly the source sentence that
  POST /v1/translate (called here, from Python, on the same text) gives for its index,
  with dir=rtl, lang=ar and right alignment; its `.en` cell holds exactly the English of
  that index in the answer the page itself got (recorded by wrapping window.fetch), in
  Latin letters rather than Arabic ones; #copy puts the whole translation on the
  clipboard;
- layout: side by side at 1280x900; at 390x844 Arabic above English, #source full width,
  no horizontal scroll. Screenshots: desktop.png, phone.png (the rows), phone-top.png (the
  form), desktop-full.png and phone-full.png (whole pages), summary.png, phone-summary.png;
- Summarize: the summary is streamed into #summary (seen with text while the stream is
  open) and ends done and non-empty; each cited source shows the Arabic sentence of its
  index;
- errors: empty text gives a message in #error without a request (the API answers an
  empty text with no sentences, not an error); a malformed glossary gives the API's own
  error.message in #error.
"""

import base64
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

TRANSLATE_WAIT = 900  # seconds: a 0.5B model on two busy cores
SUMMARY_WAIT = 600

failures = []


def check(ok, what):
    """Records a failed check; returns ok."""
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)
    return ok


def log(message):
    print(message, flush=True)


def api(base, path, body):
    """POST a JSON body; returns (status, parsed JSON answer)."""
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TRANSLATE_WAIT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def start_browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--lang=en-US",
    ]:
        options.add_argument(flag)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(30)
    return driver


def viewport(driver, width, height, mobile):
    """Sets the page's viewport exactly (a window size would include the browser's frame)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    time.sleep(0.3)


def screenshot(driver, path, full=False):
    params = {"format": "png"}
    if full:
        size = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        params["captureBeyondViewport"] = True
        params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", params)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def paste(driver, text):
    """Puts text in #source as a paste does: the value, then an input event."""
    driver.execute_script(
        "const s = document.getElementById('source'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input', {bubbles: true}));",
        text,
    )


def wait(driver, script, seconds, what, every=1.0):
    """Waits until `script` returns something truthy; returns it (None on timeout)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(every)
    check(False, f"timed out after {seconds} s waiting for {what}")
    return None


# Records the JSON answers of /v1/translate the page receives, to compare the rows with.
RECORD_FETCH = """
window.__answers = [];
const original = window.fetch;
window.fetch = async (...args) => {
  const response = await original(...args);
  if (String(args[0]).includes('/v1/translate')) {
    response.clone().json().then((j) => window.__answers.push(j), () => {});
  }
  return response;
};
"""

ROWS = """
return [...document.querySelectorAll('#result .pair')].map((row) => {
  const ar = row.querySelector('.ar'), en = row.querySelector('.en');
  const text = en && (en.querySelector('.text') || en);
  return {
    index: row.dataset.index,
    ar_index: ar && ar.dataset.index, en_index: en && en.dataset.index,
    ar: ar && ar.textContent, en: text && text.textContent,
    ar_dir: ar && ar.getAttribute('dir'), ar_lang: ar && ar.getAttribute('lang'),
    en_lang: en && en.getAttribute('lang'),
    align: ar && getComputedStyle(ar).textAlign,
    direction: ar && getComputedStyle(ar).direction,
    ar_box: ar && ar.getBoundingClientRect().toJSON(),
    en_box: en && en.getBoundingClientRect().toJSON(),
  };
});
"""

LATIN = re.compile(r"[A-Za-z]")
ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")


def check_rows(rows, expected, got):
    """The page's rows against the API's sentences (`expected`, asked from Python) and the
    answer the page itself received (`got`)."""
    check(
        len(rows) == len(expected),
        f"{len(rows)} rows on the page, {len(expected)} sentences in the API's answer",
    )
    by_index = {s["index"]: s for s in got["sentences"]} if got else {}
    if got:
        check(
            [s["source"] for s in got["sentences"]] == [s["source"] for s in expected],
            "the page's answer splits the text differently from the API asked directly",
        )
    same_english = 0
    for row, want in zip(rows, expected):
        i = want["index"]
        where = f"row {i}"
        check(
            row["index"] == str(i) and row["ar_index"] == str(i) and row["en_index"] == str(i),
            f"{where}: data-index {row['index']}/{row['ar_index']}/{row['en_index']}, expected {i}",
        )
        check(
            row["ar"] == want["source"],
            f"{where}: .ar shows {row['ar']!r}, the API's sentence {i} is {want['source']!r}",
        )
        check(row["ar_dir"] == "rtl", f"{where}: .ar has dir={row['ar_dir']!r}, not rtl")
        check(row["ar_lang"] == "ar", f"{where}: .ar has lang={row['ar_lang']!r}, not ar")
        check(row["en_lang"] == "en", f"{where}: .en has lang={row['en_lang']!r}, not en")
        check(
            row["align"] == "right" or (row["align"] == "start" and row["direction"] == "rtl"),
            f"{where}: .ar is aligned {row['align']} ({row['direction']}), not right",
        )
        english = (row["en"] or "").strip()
        check(bool(english), f"{where}: .en is empty")
        if not want["passthrough"]:
            latin, arabic = len(LATIN.findall(english)), len(ARABIC.findall(english))
            check(
                latin > arabic,
                f"{where}: .en is not Latin ({latin} Latin letters, {arabic} Arabic): {english!r}",
            )
        if got:
            answer = by_index.get(i)
            check(
                answer is not None and row["en"] == answer["translation"],
                f"{where}: .en shows {row['en']!r}, the page's answer for {i} is "
                f"{answer and answer['translation']!r}",
            )
        same_english += row["en"] == want["translation"]
    # Informational: batching may change a greedy decode's last digits, hence its words.
    log(f"{same_english}/{len(expected)} English sentences equal the API's independent answer")


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    base, seed_file, out = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    with open(seed_file, encoding="utf-8") as f:
        seed = f.read()
    began = time.time()

    # The API's own sentence pairs, asked alongside the page's request (the server
    # decodes the two together).
    direct = {}

    def ask():
        direct["answer"] = api(base, "/v1/translate", {"text": seed, "format": "json"})

    asker = threading.Thread(target=ask)
    profile = tempfile.mkdtemp(prefix="tarjama-page-")
    driver = start_browser(profile)
    try:
        viewport(driver, 1280, 900, False)
        driver.get(base + "/")
        driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
        check(driver.title.startswith("tarjama"), f"page title {driver.title!r}")
        for name in ["source", "translate", "summarize", "glossary", "result", "summary",
                     "error", "status", "copy"]:
            check(bool(driver.find_elements(By.ID, name)), f"no #{name} on the page")

        # Errors first: they are quick. Empty text is refused before any request.
        paste(driver, "   ")
        driver.find_element(By.ID, "translate").click()
        message = wait(driver, "return document.getElementById('error').textContent", 10,
                       "a message in #error for empty text")
        log(f"empty text: #error says {message!r}")
        # A glossary line without a separator: the API's own words must show.
        bad_glossary = "بوتين Putin"
        status, answer = api(base, "/v1/translate",
                             {"text": "قال بوتين", "format": "json", "glossary": bad_glossary})
        check(status == 400, f"a malformed glossary answers {status}, expected 400")
        expected_message = answer.get("error", {}).get("message", "")
        paste(driver, "قال بوتين")
        driver.execute_script(
            "document.getElementById('glossary').value = arguments[0];", bad_glossary)
        driver.find_element(By.ID, "translate").click()
        shown = wait(
            driver,
            "const e = document.getElementById('error').textContent;"
            "return e && !document.getElementById('translate').disabled && e;",
            60, "the API's error in #error")
        check(shown == expected_message,
              f"#error says {shown!r}, the API's error.message is {expected_message!r}")
        driver.execute_script("document.getElementById('glossary').value = '';")

        # Translate the seed article.
        driver.execute_script(RECORD_FETCH)
        paste(driver, seed)
        asker.start()
        started = time.time()
        driver.find_element(By.ID, "translate").click()
        check(driver.execute_script("return document.getElementById('translate').disabled"),
              "Translate is not disabled while the page works")
        done = wait(
            driver,
            "return !document.getElementById('translate').disabled && "
            "(document.querySelectorAll('#result .pair').length || "
            "document.getElementById('error').textContent || false);",
            TRANSLATE_WAIT, "the translation rows", every=2)
        log(f"translation shown after {time.time() - started:.0f} s")
        error = driver.execute_script("return document.getElementById('error').textContent")
        check(not error, f"#error after translating: {error!r}")
        asker.join(TRANSLATE_WAIT)
        status, expected = direct.get("answer", (None, None))
        if check(status == 200, f"POST /v1/translate from Python answered {status}: {expected}"):
            got = (driver.execute_script("return window.__answers") or [None])[-1]
            check(got is not None, "the page's answer was not recorded")
            if done:
                rows = driver.execute_script(ROWS)
                check_rows(rows, expected["sentences"], got)
                # Side by side on a desktop: same top, Arabic and English not overlapping.
                first = rows[0] if rows else None
                if first:
                    a, e = first["ar_box"], first["en_box"]
                    check(abs(a["top"] - e["top"]) < 2 and (a["right"] <= e["left"] or e["right"] <= a["left"]),
                          f"at 1280 px the first pair is not side by side: {a} {e}")
            # The copy button copies the whole English the page got.
            driver.find_element(By.ID, "copy").click()
            copied = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "navigator.clipboard.readText().then(done, (e) => done('cannot read: ' + e));")
            check(got is not None and copied == got["translation"],
                  f"the clipboard holds {copied[:80]!r}..., not the page's translation")
        screenshot(driver, os.path.join(out, "desktop.png"))
        screenshot(driver, os.path.join(out, "desktop-full.png"), full=True)

        # Phone width: stacked, Arabic above English, no horizontal scroll.
        viewport(driver, 390, 844, True)
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        check(widths[0] <= widths[1],
              f"at 390 px the page scrolls sideways: scrollWidth {widths[0]} > innerWidth {widths[1]}")
        rows = driver.execute_script(ROWS)
        for row in rows:
            a, e = row["ar_box"], row["en_box"]
            if not check(a["bottom"] <= e["top"] + 1,
                         f"at 390 px row {row['index']}: the Arabic is not above the English"):
                break
        source_box = driver.execute_script(
            "return document.getElementById('source').getBoundingClientRect().width")
        check(source_box >= widths[1] - 60,
              f"at 390 px #source is {source_box:.0f} px wide of {widths[1]}")
        driver.execute_script("document.getElementById('result').scrollIntoView()")
        screenshot(driver, os.path.join(out, "phone.png"))
        screenshot(driver, os.path.join(out, "phone-full.png"), full=True)
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot(driver, os.path.join(out, "phone-top.png"))
        viewport(driver, 1280, 900, False)

        # Summarize a short text: streamed, then done with its sources.
        lines = [l for l in seed.splitlines() if l.strip()]
        short = "\n".join(lines[:3]) + "\n"
        paste(driver, short)
        driver.execute_script("document.getElementById('sentences').value = '2';")
        driver.execute_script("""
window.__streamed = [];
const box = document.getElementById('summary');
new MutationObserver(() => {
  if (box.dataset.state === 'streaming' && box.textContent) window.__streamed.push(box.textContent);
}).observe(box, {childList: true, characterData: true, subtree: true});
""")
        started = time.time()
        driver.find_element(By.ID, "summarize").click()
        state = wait(
            driver,
            "const s = document.getElementById('summary').dataset.state;"
            "return s !== 'streaming' && !document.getElementById('summarize').disabled && s;",
            SUMMARY_WAIT, "the summary to finish", every=1)
        log(f"summary finished ({state}) after {time.time() - started:.0f} s")
        error = driver.execute_script("return document.getElementById('error').textContent")
        check(state == "done" and not error, f"summary state {state!r}, #error {error!r}")
        summary = driver.execute_script("return document.getElementById('summary').textContent")
        check(bool(summary.strip()), "#summary is empty")
        streamed = driver.execute_script("return window.__streamed")
        check(len(streamed) >= 1, "#summary never showed text while the stream was open")
        log(f"summary streamed in {len(streamed)} updates: {summary!r}")
        sources = driver.execute_script("""
return [...document.querySelectorAll('#summary-sentences .source')].map((s) =>
  ({index: Number(s.dataset.index), ar: s.querySelector('.ar').textContent}));""")
        # The spans the page sliced must be sentences of the text: compare them with the
        # API's sentence split of the same text.
        status, split = api(base, "/v1/translate", {"text": short, "format": "json"})
        by_index = {s["index"]: s["source"] for s in split.get("sentences", [])}
        for s in sources:
            check(s["ar"] == by_index.get(s["index"], "").strip(),
                  f"summary source {s['index']} shows {s['ar']!r}, the sentence is "
                  f"{by_index.get(s['index'])!r}")
        log(f"summary cites {len(sources)} source sentences")
        screenshot(driver, os.path.join(out, "summary.png"))
        viewport(driver, 390, 844, True)
        driver.execute_script("document.getElementById('summary-box').scrollIntoView()")
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        check(widths[0] <= widths[1],
              f"at 390 px with the summary the page scrolls sideways: {widths[0]} > {widths[1]}")
        screenshot(driver, os.path.join(out, "phone-summary.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    log(f"page test took {time.time() - began:.0f} s; screenshots in {out}")
    if failures:
        print(f"{len(failures)} checks failed", file=sys.stderr)
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
