"""The report in a real browser (headless Chromium driven over the DevTools protocol, `tests/cdp.py`): a
section per law, one curve per run, a run table that sorts when a header is clicked and filters as one
types, no claim of missing CIs, provenance without a password, no script errors, a full-page screenshot."""
from __future__ import annotations

import pytest

from cdp import Browser, find_chromium
from report_store import SECRET

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
pytest.importorskip("websocket", reason="websocket-client is in the dev extra")

COLUMN = """(name => {const heads = [...document.querySelectorAll('#runs-table thead th')].map(h => h.textContent.trim());
  const i = heads.indexOf(name);
  return [...document.querySelectorAll('#runs-table tbody tr')].filter(r => !r.hidden)
    .map(r => r.cells[i].textContent.trim());})"""


def click(browser: Browser, selector: str) -> None:
    """A real mouse click (press and release) at the centre of the element."""
    browser.eval(f"document.querySelector({selector!r}).scrollIntoView({{block: 'center'}})")
    box = browser.eval(f"(() => {{const r = document.querySelector({selector!r}).getBoundingClientRect();"
                       "return [r.x + r.width / 2, r.y + r.height / 2];})()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


def header(name: str) -> str:
    index = {"run_id": 1, "precision": 5, "N": 6, "loss": 10}[name]
    return f"#runs-table thead th:nth-child({index})"


def numbers(cells: list[str]) -> list[float]:
    return [float(c.replace(",", "")) for c in cells if c != "—"]


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_report_in_headless_chromium(two_law_report, tmp_path):
    out, _ = two_law_report
    with Browser() as b:
        b.open((out / "index.html").resolve().as_uri())
        # a section per law, its name in the title
        assert b.eval("document.querySelector('#law-quest > h2').textContent").startswith("quest law: L = ")
        assert b.eval("document.querySelector('#law-chinchilla > h2').textContent").startswith("chinchilla law: L = ")
        # the curve panel: one drawn line per run
        assert b.eval("document.querySelectorAll('#curves svg g[id^=\"curve-\"] path').length") == 37
        assert b.eval("[...document.querySelectorAll('#curves svg g[id^=\"curve-\"]')]"
                      ".every(g => g.getBBox().width > 0)")
        # the run table sorts by clicking headers: numbers as numbers, text as text, missing last
        heads = b.eval("[...document.querySelectorAll('#runs-table thead th')].map(h => h.textContent.trim())")
        assert heads[:10] == ["run_id", "sweep", "status", "size", "precision", "N", "D", "D/N", "seed", "loss"]
        first = b.eval(f"{COLUMN}('run_id')")
        click(b, header("loss"))
        loss = b.eval(f"{COLUMN}('loss')")
        assert numbers(loss) == sorted(numbers(loss)) and loss[-1] == "—"  # the diverged run has no loss
        assert b.eval(f"document.querySelector({header('loss')!r}).getAttribute('aria-sort')") == "ascending"
        assert b.eval(f"{COLUMN}('run_id')") != first
        click(b, header("loss"))
        loss = b.eval(f"{COLUMN}('loss')")
        assert numbers(loss) == sorted(numbers(loss), reverse=True) and loss[-1] == "—"
        click(b, header("N"))
        n = numbers(b.eval(f"{COLUMN}('N')"))
        assert n == sorted(n) and n[0] == 26784 and n[-1] == 106816  # "106,816" after "55,536": numeric
        click(b, header("precision"))
        assert b.eval(f"{COLUMN}('precision')") == sorted(b.eval(f"{COLUMN}('precision')"), key=str.lower)
        # typing in the filter box keeps the rows holding every word
        b.eval("document.querySelector('input.table-filter').focus()")
        b.send("Input.insertText", text="w4a4 tiny")
        shown = b.eval(f"{COLUMN}('precision')")
        assert shown == ["quest:w4a4"] * 3
        assert b.eval("document.getElementById('runs-count').textContent") == "3 of 37 rows shown"
        # CIs exist, so nothing says otherwise; provenance without the password
        text = b.eval("document.body.innerText")
        assert "no CIs" not in text and "no confidence intervals" not in text
        prov = b.eval("document.getElementById('provenance').innerText")
        assert SECRET not in prov and "postgresql://lab:***@db.lab:5432/q" in prov and "fit id" in prov
        assert not [m for m in b.console if m.startswith(("error", "exception"))], b.console
        # the whole page, not a window of it
        b.eval("document.querySelector('input.table-filter').value = ''")
        height = b.eval("document.documentElement.scrollHeight")
        w, h = b.screenshot(tmp_path / "page.png", width=1280)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(tmp_path / "page.png")
    assert pixels.shape[:2] == (h, w) and h >= height > 4000
    assert (pixels[..., :3].mean(axis=-1) < 0.95).mean() > 0.02, "screenshot is (almost) blank"
