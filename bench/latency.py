"""Latency benchmark: Concierge versus a stock `rasa init` bot, same turns, same machine.

    make bench-latency            (or: .venv/bin/python bench/latency.py --turns 400 --concurrency 8)

Trains the stock bot in a temporary folder, starts both assistants on free local ports,
sends the same number of turns to each over REST from several concurrent conversations,
and prints p50/p95/max latency and turns/s for both plus the ratio. Concierge answers from
a freshly seeded database (a temporary copy, so the benchmark never touches var/).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
sys.path.insert(0, str(ROOT))

STOCK_SCRIPT = ["hello", "I am feeling sad", "yes", "are you a bot?", "great, thanks", "goodbye"]
CONCIERGE_SCRIPT = [
    "hello",
    "where is my order 190001?",
    "alice.martin@example.com",
    "which payment methods do you accept?",
    "how long does delivery take?",
    "thanks, bye",
]


def log(msg: str) -> None:
    print(f"[bench-latency] {msg}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited early (code {proc.returncode})")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up in {timeout}s")


def rasa_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1", **extra}


def train_stock(workdir: Path) -> Path:
    log("training the stock `rasa init` bot (DIET and TED at their default epochs)...")
    t0 = time.monotonic()
    subprocess.run(
        [str(RASA), "init", "--no-prompt", "--init-dir", str(workdir)],
        cwd=workdir,
        env=rasa_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    model = max((workdir / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    log(f"stock bot trained in {time.monotonic() - t0:.0f}s")
    return model


def conversation(url: str, script: list[str], label: str) -> tuple[list[float], int]:
    """One scripted conversation; returns per-turn latencies (ms) and the number of errors."""
    sender, lat, err = f"bench-{label}-{uuid.uuid4().hex[:8]}", [], 0
    session = requests.Session()
    for text in script:
        t0 = time.perf_counter()
        try:
            resp = session.post(url, json={"sender": sender, "message": text}, timeout=60)
            if resp.status_code != 200 or not resp.json():
                err += 1
        except requests.RequestException:
            err += 1
        lat.append((time.perf_counter() - t0) * 1000)
    return lat, err


def summarise(latencies: list[float], errors: int, elapsed: float) -> dict:
    latencies = sorted(latencies)
    q = statistics.quantiles(latencies, n=100)
    return {
        "turns": len(latencies),
        "errors": errors,
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "max_ms": round(latencies[-1], 1),
        "turns_per_s": round(len(latencies) / elapsed, 1),
    }


def drive_interleaved(
    targets: dict[str, tuple[str, list[str]]], turns: int, concurrency: int, rounds: int = 6
) -> dict[str, dict]:
    """Alternates the bots in rounds so both see the same background load on the machine."""
    per_round = {name: max(1, -(-turns // len(script) // rounds)) for name, (_, script) in targets.items()}
    lat = {name: [] for name in targets}
    errs = dict.fromkeys(targets, 0)
    busy = dict.fromkeys(targets, 0.0)
    for name, (url, script) in targets.items():  # warm-up, not measured
        conversation(url, script, name)
    with ThreadPoolExecutor(concurrency) as pool:
        for r in range(rounds):
            for name, (url, script) in targets.items():
                t0 = time.perf_counter()
                for latencies, e in pool.map(partial(conversation, url, script), [name] * per_round[name]):
                    lat[name] += latencies
                    errs[name] += e
                busy[name] += time.perf_counter() - t0
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {len(v)} turns" for n, v in lat.items()))
    return {name: summarise(lat[name], errs[name], busy[name]) for name in targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=360)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--model", default=str(ROOT / "models" / "concierge.tar.gz"))
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"{args.model} missing: run `make train` first")

    from bot.seed import seed

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            stock_dir = tmp / "stock"
            stock_dir.mkdir()
            stock_model = train_stock(stock_dir)

            log("seeding a temporary Concierge database...")
            db_url = f"sqlite:///{tmp / 'concierge.db'}"
            seed(db_url, progress=None)
            sp, cp, ap = free_port(), free_port(), free_port()
            env = rasa_env(
                DATABASE_URL=db_url,
                PYTHONPATH=str(ROOT),
                ACTION_ENDPOINT_URL=f"http://127.0.0.1:{ap}/webhook",
            )
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
            procs.append(
                subprocess.Popen(
                    [str(RASA), "run", "-m", str(stock_model), "--port", str(sp), "-i", "127.0.0.1"],
                    cwd=stock_dir,
                    env=rasa_env(),
                    **quiet,
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot.action_server", "--port", str(ap)], cwd=ROOT, env=env, **quiet
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        str(RASA),
                        "run",
                        "-m",
                        args.model,
                        "--port",
                        str(cp),
                        "-i",
                        "127.0.0.1",
                        "--endpoints",
                        "endpoints.yml",
                        "--credentials",
                        "credentials.yml",
                    ],
                    cwd=ROOT,
                    env=env,
                    **quiet,
                )
            )
            log("starting both assistants...")
            wait_up(f"http://127.0.0.1:{sp}/", procs[0])
            wait_up(f"http://127.0.0.1:{ap}/health", procs[1])
            wait_up(f"http://127.0.0.1:{cp}/", procs[2])

            log(f"{args.turns} turns per bot, {args.concurrency} concurrent conversations, bots alternating")
            results = drive_interleaved(
                {
                    "stock": (f"http://127.0.0.1:{sp}/webhooks/rest/webhook", STOCK_SCRIPT),
                    "concierge": (f"http://127.0.0.1:{cp}/webhooks/rest/webhook", CONCIERGE_SCRIPT),
                },
                args.turns,
                args.concurrency,
            )
            stock, concierge = results["stock"], results["concierge"]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()

    ratio = round(concierge["p50_ms"] / stock["p50_ms"], 2) if stock["p50_ms"] else None
    print()
    print(f"{'':12}{'turns':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'turns/s':>9}")
    for name, r in (("stock rasa", stock), ("Concierge", concierge)):
        print(
            f"{name:12}{r['turns']:>7}{r['errors']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['max_ms']:>9}"
            f"{r['turns_per_s']:>9}"
        )
    print(f"p50 ratio Concierge/stock: {ratio} (target <= 1.3)")
    print(
        json.dumps(
            {
                "benchmark": "latency",
                "stock": stock,
                "concierge": concierge,
                "p50_ratio": ratio,
                "target_p50_ratio": 1.3,
                "concurrency": args.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main()
