"""Console users: ``python -m bot.web.users demo`` seeds the demo agent and supervisor (README),
``python -m bot.web.users add NAME --role agent|supervisor`` adds one (password from a prompt).

Why a command and not the seed: real deployments create their own people; the demo accounts are
for ``make run`` on a fresh clone and are created only when they do not exist yet.
"""

from __future__ import annotations

import argparse
import getpass

from sqlalchemy.orm import Session

from bot.db import handoffs as repo
from bot.db.session import session_scope
from bot.web.auth import create_agent

DEMO_USERS = (  # documented in README "The agent console"; change them outside a demo
    ("alex", "Alex", "concierge-agent-demo", "agent"),
    ("sam", "Sam", "concierge-supervisor-demo", "supervisor"),
)


def ensure_demo_users(session: Session) -> list[str]:
    """Creates the demo agent and supervisor when missing; returns the user names created."""
    created = []
    for username, name, password, role in DEMO_USERS:
        if repo.agent_by_username(session, username) is None:
            create_agent(session, username, name, password, role)
            created.append(username)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concierge console users")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="create the demo agent and supervisor when missing")
    add = sub.add_parser("add", help="add a user (password prompted)")
    add.add_argument("username")
    add.add_argument("--name", default="")
    add.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    args = parser.parse_args(argv)
    with session_scope() as session:
        if args.cmd == "demo":
            created = ensure_demo_users(session)
            print(f"demo console users created: {', '.join(created) or 'none (they exist)'}")
        else:
            password = getpass.getpass("Password (10+ characters): ")
            create_agent(session, args.username, args.name or args.username, password, args.role)
            print(f"created {args.role} {args.username}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
