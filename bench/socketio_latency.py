"""socket.io channel latency beside REST, same messages, same stack, same run.

    .venv/bin/python bench/socketio_latency.py            (--messages 40 for more)

Starts the real stack (Rasa + action server on a seeded SQLite database; tests/stack.py's
start_servers) on free ports. A logged-in customer (signed token in customData / metadata) sends
each message over socket.io with a python-socketio client (websocket transport, as rasa-webchat
after its upgrade) and then the same message over REST (the baseline), alternating so both see
the same conditions. socket.io: time to the first ``bot_uttered`` and to the last one of the turn
(the turn ends when nothing more arrives for QUIET_S, which is not counted); REST: time to the
HTTP response, which carries the whole turn. Draws var/bench/socketio_latency.png. Last line: JSON.
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

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.stack import SECRET, start_servers  # noqa: E402

MESSAGES = [
    "hello",
    "where is my order?",
    "how long does delivery take?",
    "what payment methods do you accept?",
    "recommend me something",
    "what is your return policy?",
    "show me my recent orders",
    "thanks",
    "where is my refund?",
    "can I change my delivery address?",
]
QUIET_S = 1.0
REPLY_WAIT_S = 60.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def customer_id(db_url: str) -> int:
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from bot.db.models import Order

    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            return s.scalar(select(Order.customer_id).where(Order.status == "shipped").limit(1))
    finally:
        engine.dispose()


async def run(rasa_url: str, token: str, messages: list[str]) -> dict[str, list[float]]:
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue = asyncio.Queue()
    sio.on("bot_uttered", lambda data: events.put_nowait((time.perf_counter(), "bot_uttered", data)))
    sio.on("session_confirm", lambda data: events.put_nowait((time.perf_counter(), "session_confirm", data)))
    await sio.connect(rasa_url, transports=["websocket"], wait_timeout=15)
    await sio.emit("session_request", {"session_id": None})
    _, name, session_id = await asyncio.wait_for(events.get(), 15)
    assert name == "session_confirm", name
    rest_sender = f"bench-rest-{session_id[:12]}"
    out: dict[str, list[float]] = {"socketio_first": [], "socketio_turn": [], "rest": []}
    loop = asyncio.get_running_loop()

    async def over_socketio(text: str) -> None:
        while not events.empty():  # a reply later than QUIET_S must not pass for this turn's
            events.get_nowait()
            log("  (a late reply of an earlier turn was dropped)")
        sent = time.perf_counter()
        await sio.emit(
            "user_uttered", {"message": text, "session_id": session_id, "customData": {"customer_token": token}}
        )
        first, _, _ = await asyncio.wait_for(events.get(), REPLY_WAIT_S)
        last = first
        while True:
            try:
                last, _, _ = await asyncio.wait_for(events.get(), QUIET_S)
            except asyncio.TimeoutError:
                break
        out["socketio_first"].append((first - sent) * 1000)
        out["socketio_turn"].append((last - sent) * 1000)

    async def over_rest(text: str) -> None:
        body = {"sender": rest_sender, "message": text, "metadata": {"customer_token": token}}
        url = f"{rasa_url}/webhooks/rest/webhook"
        sent = time.perf_counter()
        resp = await loop.run_in_executor(None, lambda: requests.post(url, json=body, timeout=REPLY_WAIT_S))
        out["rest"].append((time.perf_counter() - sent) * 1000)
        resp.raise_for_status()

    try:
        for i, text in enumerate(messages, 1):
            # alternate which channel goes first, so neither always meets the other's warm caches
            for turn in (over_socketio, over_rest) if i % 2 else (over_rest, over_socketio):
                await turn(text)
            log(
                f"[{i}/{len(messages)}] socket.io first {out['socketio_first'][-1]:.0f} ms, "
                f"turn {out['socketio_turn'][-1]:.0f} ms; REST {out['rest'][-1]:.0f} ms  ({text!r})"
            )
    finally:
        await sio.disconnect()
    return out


def chart(path: Path, times: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"socketio_first": "socket.io first reply", "socketio_turn": "socket.io whole turn", "rest": "REST"}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot([times[k] for k in labels], tick_labels=list(labels.values()), orientation="horizontal")
    ax.set_xlabel("milliseconds (message sent -> reply received)")
    ax.set_title(f"Concierge reply latency, {len(times['rest'])} messages each, same stack")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20, help="messages per channel (cycled from a fixed list)")
    args = parser.parse_args()
    messages = [MESSAGES[i % len(MESSAGES)] for i in range(max(1, args.messages))]
    from bot.services.identity import sign_token

    with tempfile.TemporaryDirectory(prefix="socketio-bench-") as tmp:
        log("starting Rasa + action server (about a minute)...")
        stack = start_servers(Path(tmp))
        servers = next(stack)
        try:
            token = sign_token(customer_id(servers.db_url), ttl_s=3600, secret=SECRET)
            # one warm-up turn on each channel (models load on first use)
            asyncio.run(run(servers.rasa_url, token, ["hello"]))
            times = asyncio.run(run(servers.rasa_url, token, messages))
        finally:
            stack.close()
    png = ROOT / "var" / "bench" / "socketio_latency.png"
    chart(png, times)
    summary = {
        "messages": len(messages),
        **{f"{k}_p50_ms": round(statistics.median(v), 1) for k, v in times.items()},
        **{f"{k}_p95_ms": round(pct(v, 0.95), 1) for k, v in times.items()},
        "quiet_s": QUIET_S,
        "chart": str(png.relative_to(ROOT)),
    }
    print(
        f"socket.io first reply p50 {summary['socketio_first_p50_ms']} ms (p95 {summary['socketio_first_p95_ms']}), "
        f"whole turn p50 {summary['socketio_turn_p50_ms']} ms (p95 {summary['socketio_turn_p95_ms']}); "
        f"REST baseline p50 {summary['rest_p50_ms']} ms (p95 {summary['rest_p95_ms']})"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
