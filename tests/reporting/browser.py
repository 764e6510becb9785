"""Headless Chromium for the HTML report's browser tests: show pages in iframes of given widths, run a probe in
each once it has loaded (every ``<details>`` opened first) and collect what the probes post back.

A test module in ``tests/reporting/`` imports it as ``from browser import ...``: pytest puts that folder on
``sys.path`` (it has no ``__init__.py``), as ``tests/`` is for ``from backdoors import ...``. The overflow check
is the one of ``test_html_layout.py``: an element whose content is wider than its box, or whose box leaves its
card (a finding's section, else ``<main>``; for the parts of a chart, its ``<svg>``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
SKIP_REASON = "needs headless Chromium (`apt-get install chromium`), as in .ci/run"

#: ``overflows()``: what leaves its card or is wider than its box, as lines of text (none when the layout holds).
OVERFLOWS = """
const name = (e) => {
  let s = e.tagName.toLowerCase();
  if (e.id) s += "#" + e.id;
  const c = e.getAttribute("class");
  if (c) s += "." + c.trim().split(/\\s+/).join(".");
  return s;
};
const path = (e) => {
  const parts = [];
  for (let n = e; n && n !== document.body; n = n.parentElement) parts.unshift(name(n));
  return parts.join(" > ");
};
function overflows() {
  const bad = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) bad.push(`page: ${root.scrollWidth} px wide in ${root.clientWidth}`);
  for (const e of document.querySelectorAll("main *")) {
    const box = e.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const inSvg = e instanceof SVGElement && e.tagName.toLowerCase() !== "svg";
    const card = inSvg ? e.closest("svg") : e.closest("section.finding") || e.closest("main");
    const c = card.getBoundingClientRect();
    const vertical = inSvg && (box.top < c.top - 1 || box.bottom > c.bottom + 1);
    if (box.left < c.left - 1 || box.right > c.right + 1 || vertical) {
      bad.push(`${path(e)} [${Math.round(box.left)}, ${Math.round(box.right)}] leaves ${name(card)} ` +
               `[${Math.round(c.left)}, ${Math.round(c.right)}]`);
    }
    if (!(e instanceof SVGElement) && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1) {
      bad.push(`${path(e)}: content ${e.scrollWidth} px wide in ${e.clientWidth}`);
    }
  }
  return bad;
}
"""

#: ``visible(e)``: rendered with a height, not hidden by CSS (``e`` may be null: not visible).
VISIBLE = """
function visible(e) {
  if (!e) return false;
  const shown = e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  return shown && e.getBoundingClientRect().height > 0;
}
"""

_PROBE = """
addEventListener("load", () => {{
  for (const d of document.querySelectorAll("details")) d.open = true;
  {helpers}
  const result = {expression};
  parent.postMessage(JSON.stringify({{frame: location.hash.slice(1), width: innerWidth, result}}), "*");
}});
"""

_FRAMES = """<!DOCTYPE html>
<html><body style="margin:0">
{frames}
<script>
addEventListener("message", (event) => {{
  const out = document.createElement("pre");
  out.className = "layout";
  out.textContent = event.data;
  document.body.append(out);
}});
</script>
</body></html>
"""


class _Results(HTMLParser):
    """The text of each ``<pre class="layout">`` in the dumped page."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre" and ("class", "layout") in attrs:
            self._inside = True
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._inside = self._inside and tag != "pre"

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.texts[-1] += data


def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium with a throw-away profile; its standard output."""
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def probe(
    pages: Mapping[str, str], widths: Sequence[int], tmp_path: Path, expression: str, helpers: str = ""
) -> dict[str, tuple[int, Any]]:
    """Show each page in an iframe of each width and evaluate the JavaScript ``expression`` in it once it has
    loaded, after opening every ``<details>`` and defining ``helpers`` (e.g. :data:`OVERFLOWS`, :data:`VISIBLE`).
    For each ``"NAME@WIDTH"``: the frame's width as the page saw it, and the expression's value (through JSON)."""
    script = _PROBE.format(helpers=helpers, expression=expression)
    frames = []
    for name, html in pages.items():
        assert "</body>" in html, f"{name}: no </body> to add the probe before"
        (tmp_path / f"{name}.html").write_text(html.replace("</body>", f"<script>{script}</script></body>"), "utf-8")
        frames += [
            f'<iframe src="{name}.html#{name}@{w}" style="border:0;display:block;width:{w}px;height:900px"></iframe>'
            for w in widths
        ]
    outer = tmp_path / "frames.html"
    outer.write_text(_FRAMES.format(frames="\n".join(frames)), "utf-8")
    dom = chromium(tmp_path / "profile", "--window-size=1700,1000", "--virtual-time-budget=10000", "--dump-dom",
                   outer.as_uri())  # fmt: skip
    parser = _Results()
    parser.feed(dom)
    results = [json.loads(text) for text in parser.texts]
    return {r["frame"]: (r["width"], r["result"]) for r in results}
