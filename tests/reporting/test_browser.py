"""The report as a person sees it: the small study of test_report.py opened in headless
Chromium at 1280 px wide. It opens with the verdict, the page never scrolls sideways, and
nothing is fetched from outside the file.

A copy of the report gets a probe script that writes what the browser measured into a
``<pre id="probe">``, read back with ``--dump-dom``. Chromium runs with every host name
unresolvable (``--host-resolver-rules``), so a request could not succeed anyway. Screenshots
for a person to look at go to ``runs/browser/`` under the project root.

Chromium is required: without ``chromium`` on PATH the tests fail (they do not skip)."""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.reporting import study as S
from simulator.reporting.html import write_report
from tests.reporting.test_report import ROOT, shared_study

#: one browser run for the module under ``--dist loadgroup`` (make test)
pytestmark = pytest.mark.xdist_group("browser")

WIDTH, HEIGHT = 1280, 900
SHOTS = ROOT / "runs" / "browser"

PROBE = """<script>
addEventListener("load", () => {
  const d = document.documentElement, urls = [];
  const css = t => urls.push(...(t.match(/url\\([^)]*\\)/g) || []));
  for (const el of document.querySelectorAll("*")) {
    for (const a of ["src", "href", "srcset", "poster", "data", "action", "background"])
      if (el.hasAttribute(a)) urls.push(el.getAttribute(a).slice(0, 40));
    if (el.hasAttribute("style")) css(el.getAttribute("style"));
  }
  for (const sheet of document.styleSheets) {
    if (sheet.href) urls.push(sheet.href.slice(0, 40));
    try { for (const rule of sheet.cssRules) css(rule.cssText); } catch (e) { urls.push("unreadable stylesheet"); }
  }
  const first = document.querySelector("body > section");
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, innerWidth, innerHeight, scrollHeight: d.scrollHeight,
    firstSection: first && first.id, verdictTop: first && first.getBoundingClientRect().top,
    verdict: [...document.querySelectorAll("#verdict li")].map(li => li.textContent),
    urls, resources: performance.getEntriesByType("resource").map(r => r.name.slice(0, 40)),
  });
  document.body.append(probe);
});
</script>"""


def chromium(*args: str, width: int = WIDTH, height: int = HEIGHT, profile: Path) -> str:
    """Run headless Chromium offline (no host name resolves) and return its stdout."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Chromium is not on PATH; the browser test needs it: install it with `apt-get install chromium` "
                    "(Debian/Ubuntu).", pytrace=False)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000",  # screenshots fully painted
           f"--user-data-dir={profile}", f"--window-size={width},{height}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return S.load_study(shared_study(tmp_path_factory))


def measure(study: S.Study, tmp: Path) -> dict:
    """What the browser measured on the study's report (the probe's JSON); screenshots written."""
    report = write_report(study.path, tmp / "report.html")
    probed = tmp / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    dom = chromium("--dump-dom", probed.as_uri(), profile=tmp / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, f"the probe did not run; Chromium printed:\n{dom[-2000:]}"
    measured = json.loads(html.unescape(found.group(1)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, height in (("report-first-screen.png", HEIGHT), ("report-full-page.png", measured["scrollHeight"])):
        part = SHOTS / f".{os.getpid()}-{name}"  # then renamed: whole files only, also when two workers take them
        chromium("--hide-scrollbars", f"--screenshot={part}", report.as_uri(), height=height, profile=tmp / "profile")
        os.replace(part, SHOTS / name)
    return measured


@pytest.fixture(scope="module")
def browser(study, tmp_path_factory):
    """Call it in a test: the browser runs once, and a missing Chromium fails each test (not its set-up)."""
    return functools.cache(lambda: measure(study, tmp_path_factory.mktemp("browser")))


def test_report_opens_with_the_verdict(browser, study):
    page = browser()
    assert page["firstSection"] == "verdict"
    assert 0 <= page["verdictTop"] < page["innerHeight"], "the verdict is not on the first screen"
    assert page["verdict"] == S.verdict_lines(study)


def test_page_never_scrolls_sideways_at_1280_px(browser):
    page = browser()
    assert page["innerWidth"] == WIDTH
    assert page["scrollWidth"] <= page["clientWidth"] <= WIDTH, page


def test_no_request_leaves_the_file(browser):
    page = browser()
    remote = re.compile(r"""^\s*(url\(\s*['"]?\s*)?(https?:|//)""", re.I)
    assert page["urls"], "the probe found no src/href at all"
    assert not [u for u in page["urls"] + page["resources"] if remote.match(u)], page["urls"]
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in page["urls"]), page["urls"]
    assert not [r for r in page["resources"] if not r.startswith("data:")], page["resources"]


def test_screenshots_for_a_person(browser):
    from PIL import Image

    page = browser()
    for name, height in (("report-first-screen.png", HEIGHT), ("report-full-page.png", page["scrollHeight"])):
        with Image.open(SHOTS / name) as shot:
            assert shot.format == "PNG" and shot.size == (WIDTH, height), name
