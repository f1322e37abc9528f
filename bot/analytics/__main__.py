"""``python -m bot.analytics [--if-missing] [--no-topics] [--url URL]``: refresh all customer analytics.

Exit status 1 when nothing could be computed (with the reason, no stack trace); with ``--if-missing``
(what ``make run`` uses) the same message but status 0, since the assistant works without analytics.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.analytics",
        description="Recompute segments, churn risk, customer value, lifecycle stages and feedback topics.",
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or var/concierge.db)")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when analytics already exist")
    parser.add_argument("--no-topics", action="store_true", help="skip the feedback topics (no spaCy/encoder)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from bot.analytics.refresh import is_missing, refresh  # heavy: pandas, lifetimes; --help stays quick

    say = None if args.quiet else (lambda msg: print(msg, flush=True))
    try:
        if args.if_missing and not is_missing(args.url):
            if say:
                say("analytics already computed: nothing to do (--if-missing; `make analytics` recomputes)")
            return 0
        refresh(args.url, progress=say, with_topics=not args.no_topics)
    except ValueError as exc:  # no schema or too little data to analyse: say so, no stack trace
        print(f"analytics not computed: {exc}", file=sys.stderr)
        if args.if_missing:  # `make run`: the assistant works without analytics (neutral priorities)
            print("the assistant runs without analytics until `make analytics` succeeds", file=sys.stderr)
            return 0
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
