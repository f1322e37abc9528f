"""``rasa`` with the HTTP API token read from RASA_API_TOKEN, never from the command line.

Why: Rasa 3.6 takes the token of its HTTP API only as ``--auth-token <token>``
(rasa/cli/arguments/run.py; no environment variable, no file), and a command line is readable by
every local user (``ps``, /proc/<pid>/cmdline). This adds the option inside the process, after
the command line was set, so the process list never shows the token.

Usage (the Rasa runtime, .venv-rasa): ``RASA_API_TOKEN=... python scripts/rasa_run.py run --enable-api ...``.
Without --enable-api it is plain ``rasa``; --enable-api without RASA_API_TOKEN, or a token on the
command line, is refused.
"""

from __future__ import annotations

import os
import sys


def rasa_argv(argv: list[str], environ: dict[str, str]) -> list[str]:
    """Rasa's arguments: ``argv`` plus ``--auth-token`` from the environment when the API is on."""
    if any(a in ("-t", "--auth-token") or a.startswith("--auth-token=") for a in argv):
        raise SystemExit("rasa_run.py: pass the API token as RASA_API_TOKEN, not on the command line")
    if "--enable-api" not in argv:
        return list(argv)
    token = environ.get("RASA_API_TOKEN", "").strip()
    if not token:
        raise SystemExit("rasa_run.py: --enable-api needs RASA_API_TOKEN (Rasa's HTTP API is never open)")
    return [*argv, f"--auth-token={token}"]  # one argument: a token may start with "-" (1 in 64 generated ones)


def main() -> None:
    sys.argv = ["rasa", *rasa_argv(sys.argv[1:], dict(os.environ))]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
