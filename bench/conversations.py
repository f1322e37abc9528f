"""Customer conversations per repair pattern (issue 25 §4): how many of the corpus in
tests/e2e/conversations/ pass against the real servers, per pattern and per flow.

The corpus is played by the same runner as the tests (tests/e2e/customers.py) on a fresh stack.
With ``--baseline REF`` the same corpus is also played against the code and model of git revision
REF, built in a worktree beside this checkout (its model trained there), so the report shows
"before" beside "now" measured in the same run. Last line: JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, emit, say


def play_all(label: str) -> dict:
    """Starts this checkout's stack and plays every conversation; returns the outcomes' summary."""
    from sqlalchemy import create_engine

    from tests.e2e import customers
    from tests.stack import start_servers

    conversations = customers.load()
    passed: Counter = Counter()
    total: Counter = Counter()
    by_flow: Counter = Counter()
    flow_total: Counter = Counter()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="concierge-conv-") as tmp:
        say(f"{label}: starting the stack")
        gen = start_servers(Path(tmp))
        servers = next(gen)
        db = create_engine(servers.db_url)
        try:
            started = time.perf_counter()
            for i, conversation in enumerate(conversations, 1):
                try:
                    outcome = customers.play(conversation, servers, db)
                    ok, why = outcome.passed, (outcome.failures or [""])[0]
                except Exception as exc:  # an old revision may lack what a conversation needs
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                total[conversation.pattern] += 1
                flow_total[conversation.flow] += 1
                if ok:
                    passed[conversation.pattern] += 1
                    by_flow[conversation.flow] += 1
                else:
                    failed.append(f"{conversation.id}: {why}")
                if i % 10 == 0 or i == len(conversations):
                    say(f"{label}: {i}/{len(conversations)} played, {sum(passed.values())} passed "
                        f"({time.perf_counter() - started:.0f} s)")
        finally:
            db.dispose()
            gen.close()
    return {"patterns": {p: [passed[p], total[p]] for p in customers.PATTERNS},
            "flows": {f: [by_flow[f], flow_total[f]] for f in sorted(flow_total)},
            "passed": sum(passed.values()), "total": sum(total.values()), "failed": failed}


def baseline(ref: str, work: Path) -> dict:
    """Plays the corpus against revision `ref`: a worktree with this checkout's environments, the
    runner and the corpus copied in, its own model trained, then this script again there."""
    tree = work / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
                   check=True, capture_output=True)
    try:
        for venv in (".venv", ".venv-rasa"):  # not models/: the tree trains its own model there
            if (ROOT / venv).exists():
                (tree / venv).symlink_to(ROOT / venv)
        for rel in ("tests/e2e/customers.py", "tests/e2e/chat.py", "tests/e2e/conversations",
                    "bench/conversations.py", "bench/_common.py"):
            src, dst = ROOT / rel, tree / rel
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        say(f"baseline {ref}: training its model (a few minutes)")
        with open(work / "train.log", "w") as log:
            subprocess.run(["make", "-C", str(tree), "train"], check=True, stdout=log, stderr=subprocess.STDOUT)
        out = subprocess.run([sys.executable, str(tree / "bench" / "conversations.py"), "--label", f"before ({ref})",
                              "--json-only"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                             check=True, stdout=subprocess.PIPE, text=True)
        import json

        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision to play the corpus against too (17b30e6: before issue 25)")
    parser.add_argument("--label", default="now")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    before = None
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="concierge-baseline-") as work:
            before = baseline(args.baseline, Path(work))
    now = play_all(args.label)
    if args.json_only:
        emit(now)
        return
    print(f"\nCustomer conversations per pattern (tests/e2e/conversations, {now['total']} in all)")
    head = f"{'pattern':<22}" + (f"{'before':>10}" if before else "") + f"{'now':>10}"
    print(head)
    for pattern, (ok, n) in now["patterns"].items():
        was = f"{before['patterns'].get(pattern, [0, n])[0]:>7}/{n:<2}" if before else ""
        print(f"{pattern:<22}{was}{ok:>7}/{n:<2}")
    print(f"{'all':<22}" + (f"{before['passed']:>7}/{before['total']:<2}" if before else "")
          + f"{now['passed']:>7}/{now['total']:<2}")
    print("\nper flow (now): " + ", ".join(f"{f} {ok}/{n}" for f, (ok, n) in now["flows"].items()))
    if before:
        print("per flow (before): " + ", ".join(f"{f} {ok}/{n}" for f, (ok, n) in before["flows"].items()))
    for line in now["failed"]:
        print(f"  failing now: {line}")
    for line in (before or {}).get("failed", []):
        print(f"  failing before: {line}")
    emit({"now": {k: v for k, v in now.items() if k != "failed"},
          "before": ({k: v for k, v in before.items() if k != "failed"} if before else None),
          "baseline": args.baseline})


if __name__ == "__main__":
    main()
