"""Accessibility checks run in Chromium: axe-core, focus rings, target sizes, text size, reflow."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe

AXE = Axe()
PHONE_SIZE = {"width": 390, "height": 844}
DESKTOP_SIZE = {"width": 1280, "height": 800}
# 320 CSS px wide (WCAG reflow), and a 1280 px window zoomed to 200 %.
REFLOW_SIZES = [{"width": 320, "height": 640}, {"width": 640, "height": 400}]
IMPACTS = ("minor", "moderate", "serious", "critical")


def axe_violations(page: Any, least_impact: str = "minor") -> list[str]:
    """axe-core's violations at or above ``least_impact``, one line each with the elements."""
    results = AXE.run(page)
    wanted = IMPACTS[IMPACTS.index(least_impact) :]
    return [
        f"{v['id']} ({v['impact']}): "
        + "; ".join(", ".join(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
        if v["impact"] in wanted
    ]


# Controls a patient taps: buttons, boxes, choice rows, and links that stand alone (not
# links inside a sentence, which WCAG exempts).
TARGETS = ", ".join(
    [
        "button",
        ".button",
        "input[type=text]",
        "input[type=tel]",
        "input[type=email]",
        "summary",
        "label.choice",
        ".choice-row",
        ".site-header a",
        ".tabs a",
        ".pager a",
        ".back a",
        "a.slot",
        ".day-jump a",
        ".site-footer a",
        ".location a.phone",
        ".error-summary a",
        ".privacy-link a",
        ".link a",
    ]
)

SMALL_TARGETS_JS = """(selector) => {
  const small = [];
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not shown (closed <details>)
    if (box.width < 44 || box.height < 44) {
      const text = el.textContent.trim().slice(0, 30);
      small.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" `
        + `${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return small;
}"""


def small_targets(page: Any) -> list[str]:
    return page.evaluate(SMALL_TARGETS_JS, TARGETS)


SMALL_TEXT_JS = """() => {
  const small = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;  // hidden
    if (el.closest('.visually-hidden')) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < 16) small.add(`${el.tagName.toLowerCase()}.${el.className} ${size}px `
      + `"${node.textContent.trim().slice(0, 30)}"`);
  }
  return [...small];
}"""


def small_text(page: Any) -> list[str]:
    return page.evaluate(SMALL_TEXT_JS)


def scrolls_sideways(page: Any) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )


# The focus ring of the focused element: its outline against what is behind it.
FOCUS_RING_JS = """() => {
  const el = document.activeElement;
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(',').map(Number);
    return {r, g, b, a};
  };
  const luminance = ({r, g, b}) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const behind = (node) => {
    for (let n = node.parentElement; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const style = getComputedStyle(el);
  const ring = parse(style.outlineColor);
  const width = parseFloat(style.outlineWidth) || 0;
  if (style.outlineStyle === 'none' || width < 2 || !ring) {
    return {name: el.outerHTML.slice(0, 80), ratio: 0, width};
  }
  const [l1, l2] = [luminance(ring), luminance(behind(el))].sort((a, b) => b - a);
  return {name: el.outerHTML.slice(0, 80), ratio: (l1 + 0.05) / (l2 + 0.05), width};
}"""


def focus_rings(page: Any, limit: int = 80) -> list[dict[str, Any]]:
    """Tab through the page from the top; each control's focus ring, until focus leaves."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    rings: list[dict[str, Any]] = []
    seen = set()
    for _ in range(limit):
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING_JS)
        if ring["name"] in seen or ring["name"].startswith("<body"):
            break
        seen.add(ring["name"])
        rings.append(ring)
    return rings
