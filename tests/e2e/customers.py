"""Customer conversations written as data (tests/e2e/conversations/<pattern>.yml) and played
against the real Rasa server, action server and database.

Issue 25 asks for many conversations per repair pattern (digressions, corrections, "I don't know",
answers that don't fit, carry-over, clarification, several requests at once) in every flow. Written
as YAML they read as the transcript a reviewer would check, and one runner plays them for both the
test (tests/e2e/test_customer_conversations.py) and the per-pattern report (bench/conversations.py).

A conversation file::

    pattern: correction
    conversations:
      - name: a corrected order number in the cancellation, after the confirmation was asked
        flow: cancellation
        as: alice                      # signed in (alice, bob, carla, david, or new: a fresh customer)
        orders: {A: "190002"}          # a copy of each demo order, its number written {A} below
                                       # ("=190006": the demo order itself, for what a copy lacks)
        turns:
          - say: "cancel {A} pls"
            expect: ["shall i cancel"]  # in the turn's replies, case-insensitive
            absent: ["technical"]
            buttons: ["/affirm"]       # among the buttons' payloads or titles
        then:                          # the database afterwards
          status: {A: cancelled}
          refunds: {A: 0}
          address: {A: "Rose Street"}
          email: "erin.{token}@example.com" # the (new) customer's account email ({token}: new each time)
          tickets: {complaint: 1}      # this conversation's tickets by category
          feedback: 5                  # the rating this conversation's feedback stored

Every conversation also checks what no customer should see: a technical error, or the same question
more than three times in a row.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.db.models import Address, Customer, Feedback, Order, Refund, SupportTicket
from tests.e2e.chat import Chat as _Chat
from tests.e2e.chat import own_order, signed_in
from tests.stack import Servers

CORPUS = Path(__file__).parent / "conversations"
CUSTOMERS = {"alice": 1, "bob": 2, "carla": 3, "david": 4}
PATTERNS = ("question_digression", "task_digression", "correction", "dont_know", "unfit_answer",
            "carry_over", "clarification", "multi_intent")
NEVER = ("technical problem", "traceback", "exception")
_PLACEHOLDER = re.compile(r"\{([A-Z]|email|token)\}")


class Chat(_Chat):
    prefix = "talk"


@dataclass(frozen=True)
class Turn:
    say: str
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    name: str
    pattern: str
    flow: str
    turns: tuple[Turn, ...]
    as_: str | None = None
    orders: dict[str, str] = field(default_factory=dict)
    then: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.pattern}: {self.name}"


@dataclass
class Outcome:
    conversation: Conversation
    failures: list[str]
    transcript: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def report(self) -> str:
        return "\n".join([*self.failures, "--- transcript", *self.transcript])


def _strings(value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load(corpus: Path = CORPUS) -> list[Conversation]:
    """Every conversation of the corpus, checked for shape so a typo in a file fails loudly."""
    conversations: list[Conversation] = []
    for path in sorted(corpus.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        pattern = doc["pattern"]
        if pattern not in PATTERNS:
            raise ValueError(f"{path.name}: unknown pattern {pattern!r}")
        for raw in doc["conversations"]:
            unknown = set(raw) - {"name", "flow", "as", "orders", "turns", "then"}
            if unknown or not raw.get("turns"):
                raise ValueError(f"{path.name}: {raw.get('name')!r}: bad keys {sorted(unknown)} or no turns")
            if raw.get("as") not in (None, "new", *CUSTOMERS):
                raise ValueError(f"{path.name}: {raw['name']!r}: unknown customer {raw['as']!r}")
            turns = []
            for t in raw["turns"]:
                if set(t) - {"say", "expect", "absent", "buttons"}:
                    raise ValueError(f"{path.name}: {raw['name']!r}: bad turn {t}")
                turns.append(Turn(t["say"], _strings(t.get("expect")), _strings(t.get("absent")),
                                  _strings(t.get("buttons"))))
            conversations.append(Conversation(
                name=raw["name"], pattern=pattern, flow=raw["flow"], turns=tuple(turns),
                as_=raw.get("as"), orders=dict(raw.get("orders") or {}), then=dict(raw.get("then") or {})))
    names = [c.id for c in conversations]
    if len(names) != len(set(names)):
        raise ValueError("two conversations share a name")
    return conversations


def new_customer(db: Engine) -> tuple[int, str]:
    """A customer of this conversation's own (for changes to the account, which other tests read)."""
    email = f"erin.{uuid.uuid4().hex[:10]}@example.com"
    with Session(db) as s, s.begin():
        customer = Customer(name="Erin Walsh", email=email)
        s.add(customer)
        s.flush()
        return customer.id, email


def _fill(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _longest_repeat(questions: list[str]) -> int:
    best = run = 0
    previous = None
    for q in questions:
        run = run + 1 if q and q == previous else 1
        previous = q
        best = max(best, run)
    return best


def play(conversation: Conversation, servers: Servers, db: Engine) -> Outcome:
    """Plays one conversation on a new sender and checks every turn and the database afterwards."""
    values = {key: template[1:] if template.startswith("=") else own_order(db, template)
              for key, template in conversation.orders.items()}
    values["token"] = uuid.uuid4().hex[:8]  # for what must be new each time (an account email)
    metadata = None
    customer_id = None
    if conversation.as_ == "new":
        customer_id, values["email"] = new_customer(db)
        metadata = signed_in(customer_id)
    elif conversation.as_:
        customer_id = CUSTOMERS[conversation.as_]
        metadata = signed_in(customer_id)
    chat = Chat(servers, metadata)
    failures: list[str] = []
    transcript: list[str] = []
    last_questions: list[str] = []
    for i, turn in enumerate(conversation.turns, 1):
        said = _fill(turn.say, values)
        reply = chat.say(said)
        text = chat.text(reply)
        buttons = chat.buttons(reply)
        shown = " | ".join(f"{b.get('title')} ({b.get('payload')})" for b in buttons)
        transcript += [f"{i}> {said}", *(f"   < {line}" for line in text.splitlines() if line),
                       *([f"   [{shown}]"] if shown else [])]
        low = text.lower()
        for want in turn.expect:
            if _fill(want, values).lower() not in low:
                failures.append(f"turn {i}: expected {want!r}")
        for unwanted in (*turn.absent, *NEVER):
            if _fill(unwanted, values).lower() in low:
                failures.append(f"turn {i}: did not expect {unwanted!r}")
        labels = [f"{b.get('title', '')} {b.get('payload', '')}".lower() for b in buttons]
        for want in turn.buttons:
            if not any(_fill(want, values).lower() in label for label in labels):
                failures.append(f"turn {i}: expected a button {want!r}")
        texts = [m.get("text") or "" for m in reply if m.get("text")]
        last_questions.append(texts[-1] if texts else "")
    if _longest_repeat(last_questions) > 3:
        failures.append("the same question more than three times in a row")
    failures += _check_database(conversation.then, values, customer_id, chat.sender, db)
    return Outcome(conversation, failures, transcript)


def _check_database(then: dict, values: dict[str, str], customer_id: int | None, sender: str,
                    db: Engine) -> list[str]:
    failures: list[str] = []
    with Session(db) as s:
        for key, want in (then.get("status") or {}).items():
            got = s.scalar(select(Order.status).where(Order.number == values[key]))
            if got != want:
                failures.append(f"order {key} ({values[key]}) is {got}, expected {want}")
        for key, want in (then.get("refunds") or {}).items():
            got = s.scalar(select(func.count(Refund.id)).join(Order).where(Order.number == values[key]))
            if got != want:
                failures.append(f"order {key} ({values[key]}) has {got} refunds, expected {want}")
        for key, want in (then.get("address") or {}).items():
            line = s.scalar(select(Address.line1).join(Order, Order.shipping_address_id == Address.id)
                            .where(Order.number == values[key]))
            if want.lower() not in (line or "").lower():
                failures.append(f"order {key} ships to {line!r}, expected {want!r}")
        if "email" in then:
            got = s.scalar(select(Customer.email).where(Customer.id == customer_id))
            if got != _fill(then["email"], values):
                failures.append(f"the account email is {got!r}, expected {then['email']!r}")
        if "feedback" in then:
            got = s.scalars(select(Feedback.rating).where(Feedback.sender_id == sender)
                            .order_by(Feedback.id.desc())).first()
            if got != then["feedback"]:
                failures.append(f"the stored rating is {got}, expected {then['feedback']}")
        for category, want in (then.get("tickets") or {}).items():
            got = s.scalar(select(func.count(SupportTicket.id)).where(
                SupportTicket.sender_id == sender, SupportTicket.category == category))
            if got != want:
                failures.append(f"{got} {category} tickets, expected {want}")
    return failures
