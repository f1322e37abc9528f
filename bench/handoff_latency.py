"""Handoff latency on a real stack (make bench-handoff): how fast people hear each other.

* agent -> widget: from the agent's reply POST to the console until the customer's python-socketio
  client (the widget's protocol) receives it. Baseline in the same run: the bot's own answer to a
  small message (socket.io message -> bot_uttered), i.e. what customers wait for the assistant.
* customer -> agent: from the customer's socket.io message until the agent's SSE stream (the live
  conversation view) delivers it. Baseline in the same run: the same message appearing in the CRM's
  turns table (polled every 10 ms), i.e. the event broker + ingestor part alone; the rest is the
  console's stream polling.

The stack is the production shape on this machine: Rasa (HTTP API with a token on localhost), the
action server, the CRM ingestor at its default poll interval and the web app. Prints p50/p95 per
path and, as the last line, JSON; draws var/bench/handoff_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.console_stack import AgentClient, Widget, start_console_stack  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 0.5), 1), "p95_ms": round(pct(values, 0.95), 1),
            "mean_ms": round(statistics.fmean(values), 1)}


def turn_in_crm(db_url: str, sender: str, text: str, timeout: float = 20.0) -> float:
    """perf_counter when the customer's message is in the CRM's turns table (10 ms polling)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from bot.db.models import Conversation, Turn

    engine = create_engine(db_url)
    try:
        deadline = time.monotonic() + timeout
        query = (select(Turn.id).join(Conversation).where(Conversation.sender_id == sender, Turn.role == "user",
                                                           Turn.text == text))
        while time.monotonic() < deadline:
            with Session(engine) as s:
                if s.execute(query).first():
                    return time.perf_counter()
            time.sleep(0.01)
        raise TimeoutError(f"{text!r} never reached the CRM")
    finally:
        engine.dispose()


async def run(rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-handoff-") as tmp:
        stack_gen = start_console_stack(Path(tmp), {"CONCIERGE_CRM_POLL_MS": "100"})
        stack = next(stack_gen)
        try:
            return await measure(stack, rounds)
        finally:
            stack_gen.close()


async def measure(stack, rounds: int) -> dict:  # noqa: ANN001 - a ConsoleStack
    widget = await Widget(stack.servers.rasa_url).open()
    agent = AgentClient(stack.web_url)
    bot_ms, reply_ms, crm_ms, screen_ms = [], [], [], []
    try:
        for i in range(min(rounds, 10)):  # baseline 1: the bot's own answer over socket.io
            sent = await widget.send("hi" if i % 2 == 0 else "hello there")
            first, _ = await widget.next_text()
            bot_ms.append((first - sent) * 1000)
            while True:
                try:
                    await widget.next_text(1.5)
                except asyncio.TimeoutError:
                    break
        await widget.send("I want to talk to a human")
        handover = "\n".join(await widget.texts_until_quiet())
        ticket = handover.split("(ticket ", 1)[1][:9]
        assert (await asyncio.to_thread(agent.login, "alex", "concierge-agent-demo")).status_code == 303
        handoff_id = await asyncio.to_thread(agent.find_handoff, ticket)
        await asyncio.to_thread(agent.post, handoff_id, "claim")
        await asyncio.to_thread(agent.open_stream, handoff_id)
        for i in range(rounds):
            print(f"round {i + 1}/{rounds}", file=sys.stderr, flush=True)
            # agent -> widget
            start = time.perf_counter()
            resp = await asyncio.to_thread(agent.post, handoff_id, "reply", text=f"Checking that for you ({i})")
            assert resp.status_code == 204, resp.text
            got_at, text = await widget.next_text(20)
            assert text.endswith(f"({i})"), text
            reply_ms.append((got_at - start) * 1000)
            # customer -> agent's screen, and the CRM part alone
            message = f"ok thanks, number {i} here"
            sent = await widget.send(message)
            crm_task = asyncio.create_task(asyncio.to_thread(turn_in_crm, stack.servers.db_url, widget.session_id,
                                                             message))
            shown_at, _ = await asyncio.to_thread(agent.wait_turn, lambda t, m=message: t["text"] == m, 20)
            crm_at = await crm_task
            screen_ms.append((shown_at - sent) * 1000)
            crm_ms.append((crm_at - sent) * 1000)
            await asyncio.sleep(0.2)
    finally:
        agent.close()
        await widget.close()
    return {"agent_to_widget": summary(reply_ms), "baseline_bot_answer": summary(bot_ms),
            "customer_to_agent_screen": summary(screen_ms), "baseline_customer_to_crm": summary(crm_ms),
            "raw": {"agent_to_widget": reply_ms, "bot": bot_ms, "screen": screen_ms, "crm": crm_ms}}


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = result["raw"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = [raw["agent_to_widget"], raw["bot"], raw["screen"], raw["crm"]]
    labels = ["agent reply\n-> widget", "bot answer\n(baseline)", "customer msg\n-> agent screen",
              "customer msg\n-> CRM (baseline)"]
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, 5), labels)
    ax.set_ylabel("milliseconds")
    ax.set_title("Handoff latency on this machine (p50/p95 in README)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    result = asyncio.run(run(max(2, min(args.rounds, 500))))
    chart(result, ROOT / "var" / "bench" / "handoff_latency.png")
    for name in ("agent_to_widget", "baseline_bot_answer", "customer_to_agent_screen", "baseline_customer_to_crm"):
        r = result[name]
        print(f"{name:28s} n={r['n']:3d}  p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms")
    result.pop("raw")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
