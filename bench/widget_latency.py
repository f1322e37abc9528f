"""Website widget latency: page load to widget ready, and message to reply in a real browser,
beside the same messages over REST in the same run.

    make bench-widget            (or: .venv/bin/python bench/widget_latency.py --messages 60 --loads 10)

Starts the real stack (Rasa + action server on a seeded SQLite database, the web app) on free
ports and drives Debian's chromium with Playwright. Page load: fresh browser profiles open the
shop; "widget ready" is when rasa-webchat shows its launcher, which it does only once the socket
is connected and the session confirmed (times from navigation start, after one warm-up load).
Messages: a logged-in demo customer (the widget sends her token) sends each message in the
browser, timed in the page from the Enter keydown to the first reply bubble in the DOM; the same
message then goes over REST (POST /webhooks/rest/webhook with the same token) as the baseline,
alternating so both see the same conditions. Draws var/bench/widget_latency.png. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.stack import CHROMIUM, CHROMIUM_ARGS, start_shop  # noqa: E402

MESSAGES = [
    "where is my order 190001?",
    "how long does delivery take?",
    "what payment methods do you accept?",
    "where is my order 190003?",
    "recommend me something",
    "thanks",
    "where is my refund?",
    "hello",
    "show me my recent orders",
    "what is your return policy?",
]
# Times, in the page, the Enter keydown in the widget's input and the first new reply bubble after it.
PROBE = """
(() => {
  window.__sentAt = null; window.__replyAt = null; window.__before = 0;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.classList && e.target.classList.contains('rw-new-message')) {
      window.__before = document.querySelectorAll('.rw-response').length;
      window.__replyAt = null;
      window.__sentAt = performance.now();
    }
  }, true);
  new MutationObserver(() => {
    if (window.__sentAt !== null && window.__replyAt === null &&
        document.querySelectorAll('.rw-response').length > window.__before) {
      window.__replyAt = performance.now();
    }
  }).observe(document, {childList: true, subtree: true});
})();
"""
# Times the launcher's appearance (rasa-webchat hides it until connected) from navigation start.
READY_PROBE = """
new MutationObserver((_, obs) => {
  if (document.querySelector('.rw-launcher')) { window.__widgetReadyAt = performance.now(); obs.disconnect(); }
}).observe(document, {childList: true, subtree: true});
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(pct(values, 0.95), 1),
        "max_ms": round(max(values), 1),
    }


def measure_loads(browser, url: str, loads: int) -> dict[str, list[float]]:  # noqa: ANN001
    out: dict[str, list[float]] = {"dom_ready": [], "load": [], "widget_ready": []}
    for i in range(loads + 1):  # the first load warms the browser's caches and is not counted
        ctx = browser.new_context()
        ctx.add_init_script(READY_PROBE)
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function("() => window.__widgetReadyAt !== undefined", timeout=60_000)
        timing = page.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
                       return [n.domContentLoadedEventEnd, n.loadEventEnd, window.__widgetReadyAt]; }"""
        )
        ctx.close()
        if i:
            for key, value in zip(("dom_ready", "load", "widget_ready"), timing, strict=True):
                out[key].append(float(value))
        log(f"  load {i}/{loads}: widget ready at {timing[2]:.0f} ms" + (" (warm-up)" if not i else ""))
    return out


def measure_messages(browser, shop, count: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    ctx = browser.new_context()
    ctx.add_init_script(PROBE)
    page = ctx.new_page()
    page.goto(shop.url + "/login")
    page.click("[data-testid=login-1]")
    page.wait_for_selector("[data-testid=signed-in]")
    token = page.evaluate("() => fetch('/api/chat-token').then(r => r.json()).then(b => b.token)")
    page.locator(".rw-launcher").click(timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.rw-response').length >= 1", timeout=60_000)
    page.wait_for_timeout(500)
    box = page.locator(".rw-new-message")
    rest_url = f"{shop.servers.rasa_url}/webhooks/rest/webhook"
    sender = f"bench-rest-{int(time.time())}"
    browser_ms: list[float] = []
    rest_ms: list[float] = []
    for i in range(count):
        text = MESSAGES[i % len(MESSAGES)]
        box.fill(text)
        box.press("Enter")
        page.wait_for_function("() => window.__replyAt !== null", timeout=60_000)
        browser_ms.append(page.evaluate("() => window.__replyAt - window.__sentAt"))
        page.wait_for_timeout(400)  # the rest of the turn's replies arrive (not timed)
        t0 = time.perf_counter()
        resp = requests.post(
            rest_url, json={"sender": sender, "message": text, "metadata": {"customer_token": token}}, timeout=60
        )
        rest_ms.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
        assert resp.json(), f"no REST reply to {text!r}"
        if (i + 1) % 10 == 0:
            log(f"  {i + 1}/{count} messages: browser p50 {statistics.median(browser_ms):.0f} ms, "
                f"REST p50 {statistics.median(rest_ms):.0f} ms")  # fmt: skip
    ctx.close()
    return browser_ms, rest_ms


def chart(path: Path, browser_ms: list[float], rest_ms: list[float], ready: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.boxplot([browser_ms, rest_ms], showfliers=True)
    ax1.set_xticks([1, 2], ["widget (socket.io,\nin the browser)", "REST"])
    ax1.set_ylabel("message -> reply (ms)")
    ax1.set_title(f"Reply latency, {len(browser_ms)} messages each")
    ax2.bar(range(1, len(ready) + 1), ready, color="#1f5f5b")
    ax2.set_xlabel("page load")
    ax2.set_ylabel("navigation start -> widget ready (ms)")
    ax2.set_title("Page load to widget ready")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=60, help="messages in the browser (and as many over REST)")
    parser.add_argument("--loads", type=int, default=10, help="page loads timed")
    args = parser.parse_args()
    if args.messages < 50:
        parser.error("--messages must be at least 50")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="widget-bench-") as tmp:
        log("starting Rasa, the action server and the web app (about a minute)...")
        stack = start_shop(Path(tmp))
        shop = next(stack)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                log(f"page loads ({args.loads}, after a warm-up):")
                loads = measure_loads(browser, shop.url + "/", args.loads)
                log(f"messages ({args.messages} in the browser, the same over REST, alternating):")
                browser_ms, rest_ms = measure_messages(browser, shop, args.messages)
                browser.close()
        finally:
            stack.close()
    png = ROOT / "var" / "bench" / "widget_latency.png"
    chart(png, browser_ms, rest_ms, loads["widget_ready"])
    result = {
        "page_load": {k: summary(v) for k, v in loads.items()},
        "widget_reply": summary(browser_ms),
        "rest_reply": summary(rest_ms),
        "p50_ratio_widget_over_rest": round(statistics.median(browser_ms) / statistics.median(rest_ms), 2),
        "chart": str(png.relative_to(ROOT)),
    }
    pl = result["page_load"]
    print(f"page load: DOM ready p50 {pl['dom_ready']['p50_ms']} ms, load p50 {pl['load']['p50_ms']} ms, "
          f"widget ready p50 {pl['widget_ready']['p50_ms']} / p95 {pl['widget_ready']['p95_ms']} ms")  # fmt: skip
    w, r = result["widget_reply"], result["rest_reply"]
    print(f"reply, widget in the browser: p50 {w['p50_ms']} / p95 {w['p95_ms']} ms over {w['n']} messages")
    print(f"reply, REST (baseline):       p50 {r['p50_ms']} / p95 {r['p95_ms']} ms over {r['n']} messages")
    print(f"chart: {png}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
