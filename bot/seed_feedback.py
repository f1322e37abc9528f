"""Support history for the demo shop: complaint tickets, CSAT ratings with comments and chat turns.

Called by :func:`bot.seed.seed` after the orders exist, so complaints follow what happened to
the orders (a damaged-item return gets a "damaged" complaint, a late parcel a delivery one) and
the analytics (service features, churn, feedback topics) have realistic text to work on. It uses
its own random stream, so the shop's orders are identical with or without it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import datetime, timedelta

# topic -> (ticket subject, complaint phrasings); {item} and {days} are filled per order
COMPLAINTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "late_delivery": (
        "Late delivery",
        (
            "My parcel is {days} days late and the tracking has not moved.",
            "The delivery was late again, I waited at home all day for nothing.",
            "Order still not delivered, it was supposed to arrive {days} days ago.",
            "The package arrived late, well after the promised delivery date.",
            "Why is my delivery so slow? The {item} should have been here last week.",
            "Late delivery, the courier keeps postponing it.",
        ),
    ),
    "damaged_item": (
        "Damaged item",
        (
            "The {item} arrived damaged, the box was crushed.",
            "My {item} came broken and the packaging was torn.",
            "The item was damaged in transit, there is a big crack on the side.",
            "Received a damaged {item}, it is scratched and dented.",
            "The box was soaked and the {item} inside is damaged.",
        ),
    ),
    "wrong_item": (
        "Wrong item",
        (
            "I received the wrong item, I ordered a {item} and got something else.",
            "Wrong product in the box, this is not the {item} I paid for.",
            "You sent me the wrong colour and the wrong size.",
            "The parcel contained someone else's order, not my {item}.",
        ),
    ),
    "missing_item": (
        "Missing item",
        (
            "One item is missing from my order, the {item} was not in the box.",
            "The parcel was delivered but the {item} is missing.",
            "Missing parts: the {item} came without the cable and the manual.",
        ),
    ),
    "refund_delay": (
        "Refund delay",
        (
            "I am still waiting for my refund after {days} days.",
            "The refund has not reached my card yet, it has been {days} days.",
            "My refund is taking far too long, nobody answers my emails.",
            "Where is my refund? The return was received weeks ago.",
            "Slow refund, I returned the {item} and still have no money back.",
        ),
    ),
    "defective_product": (
        "Defective product",
        (
            "The {item} stopped working after {days} days.",
            "Poor quality, the {item} broke after a week of normal use.",
            "My {item} is faulty, it keeps switching off.",
            "The {item} does not work at all out of the box.",
        ),
    ),
    "double_charge": (
        "Payment problem",
        (
            "I was charged twice for the same order.",
            "Double charge on my credit card for one purchase.",
            "The payment failed but the money was taken from my account.",
        ),
    ),
    "slow_support": (
        "Support experience",
        (
            "Customer service is slow, I waited {days} days for an answer.",
            "Nobody from support replied to my messages about the {item}.",
            "The support agent was unhelpful and closed my ticket without a fix.",
        ),
    ),
}
REFUND_REASON_TOPIC = {
    "Arrived damaged": "damaged_item",
    "Item arrived damaged": "damaged_item",
    "Wrong item received": "wrong_item",
    "Missing parts": "missing_item",
    "Stopped working": "defective_product",
    "Not as described": "wrong_item",
}
CSAT_COMMENTS: dict[int, tuple[str, ...]] = {
    5: (
        "Fast delivery and great support, thank you!",
        "The assistant sorted out my order in a minute.",
        "Quick answer, very helpful.",
        "Excellent service, the refund was processed quickly.",
        "",
    ),
    4: ("Good help, the delivery was a day late though.", "Helpful, but I had to repeat my order number.", ""),
    3: ("It was ok, the answer was a bit generic.", "The chat helped but the refund still takes long.", ""),
}
BOT_REPLIES = (
    "I'm sorry about that. I've opened a ticket and a colleague will get back to you.",
    "I'm sorry to hear that. A person from our team will look into it.",
)
NEUTRAL_TURNS = (
    ("where is my order?", "track_order"),
    ("how long does delivery take?", "delivery_period"),
    ("can I pay with paypal?", "check_payment_methods"),
    ("send me the invoice please", "get_invoice"),
    ("recommend me something", "recommend_products"),
)


def _item(names: list[str], rng: random.Random) -> str:
    name = rng.choice(names) if names else "order"
    return name.split(" ", 1)[1].lower() if " " in name else name.lower()  # drop the brand


def generate(
    rows: dict[str, list[dict]], product_names: dict[int, str], now: datetime, seed: int
) -> dict[str, list[dict]]:
    """Rows for ``support_tickets``, ``feedback`` and ``interactions`` from the generated shop."""
    rng = random.Random(seed * 7919 + 11)
    items_of: dict[int, list[str]] = {}
    for it in rows["order_items"]:
        items_of.setdefault(it["order_id"], []).append(product_names.get(it["product_id"], "item"))
    shipment_of = {s["order_id"]: s for s in rows["shipments"]}
    refunds_of: dict[int, list[dict]] = {}
    for r in rows["refunds"]:
        refunds_of.setdefault(r["order_id"], []).append(r)
    deleted = {c["id"] for c in rows["customers"] if c["status"] == "deleted"}
    out: dict[str, list[dict]] = {"support_tickets": [], "feedback": [], "interactions": []}
    ticket_no = itertools.count(600001)
    conv_no = itertools.count(1)

    def conversation(cid: int, at: datetime, turns: Iterable[tuple[str, str, str | None, float | None]]) -> str:
        conv = f"seed-{next(conv_no):06d}"
        for k, (role, text, label, score) in enumerate(turns):
            out["interactions"].append(
                {
                    "sender_id": conv,
                    "customer_id": cid,
                    "role": role,
                    "text": text,
                    "intent": ("complaint" if label == "negative" else None) if role == "user" else None,
                    "confidence": 0.9 if role == "user" else None,
                    "action": None if role == "user" else "action_open_ticket",
                    "sentiment_label": label,
                    "sentiment_score": score,
                    "created_at": at + timedelta(seconds=20 * k),
                }
            )
        return conv

    def complain(order: dict, topic: str, at: datetime) -> None:
        if at >= now:
            at = now - timedelta(hours=rng.uniform(1, 24))
        cid = order["customer_id"]
        subject, phrasings = COMPLAINTS[topic]
        text = rng.choice(phrasings).format(item=_item(items_of.get(order["id"], []), rng), days=rng.randint(3, 14))
        text = f"{text} (order #{order['number']})" if rng.random() < 0.4 else text
        score = round(-rng.uniform(0.55, 0.98), 3)
        conv = conversation(
            cid, at, [("user", text, "negative", score), ("bot", rng.choice(BOT_REPLIES), None, None)]
        )
        age = (now - at).days
        status = "open" if age < 3 else ("pending" if age < 7 and rng.random() < 0.5 else "closed")
        out["support_tickets"].append(
            {
                "number": f"TK-{next(ticket_no)}",
                "customer_id": cid,
                "sender_id": conv,
                "category": "complaint",
                "subject": subject,
                "description": text,
                "status": status,
                "priority": rng.choices(("normal", "high"), weights=(80, 20))[0],
                "created_at": at,
            }
        )
        if status == "closed" and rng.random() < 0.6:  # CSAT after the ticket was handled
            rating = rng.choices((1, 2, 3, 4), weights=(35, 35, 20, 10))[0]
            comment = "" if rng.random() < 0.3 else rng.choice(phrasings).format(
                item=_item(items_of.get(order["id"], []), rng), days=rng.randint(3, 14)
            )
            out["feedback"].append(
                {
                    "sender_id": conv,
                    "customer_id": cid,
                    "rating": rating,
                    "comment": comment,
                    "created_at": at + timedelta(days=rng.uniform(1, 5)),
                }
            )

    for order in rows["orders"]:
        cid = order["customer_id"]
        if cid in deleted or cid <= 4:  # the demo customers keep a clean, documented history
            continue
        created = order["created_at"]
        for refund in refunds_of.get(order["id"], []):
            topic = REFUND_REASON_TOPIC.get(refund["reason"])
            if topic and rng.random() < 0.55:
                complain(order, topic, refund["created_at"] - timedelta(hours=rng.uniform(1, 20)))
            if refund["status"] in ("approved", "completed") and rng.random() < 0.12:
                complain(order, "refund_delay", refund["created_at"] + timedelta(days=rng.uniform(7, 15)))
        ship = shipment_of.get(order["id"])
        late = ship and ship["delivered_at"] and ship["eta"] and ship["delivered_at"] > ship["eta"] + timedelta(hours=6)
        if late and rng.random() < 0.12:
            complain(order, "late_delivery", ship["eta"] + timedelta(days=rng.uniform(1, 3)))
        roll = rng.random()
        if roll < 0.006:
            complain(order, "double_charge", created + timedelta(days=rng.uniform(0.2, 2)))
        elif roll < 0.012:
            complain(order, "slow_support", created + timedelta(days=rng.uniform(3, 20)))
        elif roll < 0.018 and ship is not None:
            complain(order, rng.choice(("damaged_item", "missing_item", "defective_product")),
                     created + timedelta(days=rng.uniform(4, 30)))
        if rng.random() < 0.06:  # an everyday chat, often rated
            at = created + timedelta(hours=rng.uniform(2, 72))
            if at >= now:
                continue
            text, intent = rng.choice(NEUTRAL_TURNS)
            conv = conversation(
                cid,
                at,
                [("user", text, "neutral", round(rng.uniform(-0.2, 0.3), 3)), ("bot", "Here you go.", None, None)],
            )
            out["interactions"][-2]["intent"] = intent
            if rng.random() < 0.5:
                rating = rng.choices((3, 4, 5), weights=(10, 30, 60))[0]
                out["feedback"].append(
                    {
                        "sender_id": conv,
                        "customer_id": cid,
                        "rating": rating,
                        "comment": rng.choice(CSAT_COMMENTS[rating]),
                        "created_at": at + timedelta(minutes=5),
                    }
                )
    out["support_tickets"].sort(key=lambda r: r["created_at"])
    for i, t in enumerate(out["support_tickets"], start=600001):  # numbers in time order
        t["number"] = f"TK-{i}"
    for name, table_rows in out.items():
        for i, row in enumerate(table_rows, start=1):
            row["id"] = i
        out[name] = table_rows
    return out
