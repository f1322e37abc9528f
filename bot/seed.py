"""Deterministic demo shop: ``python -m bot.seed [--if-empty] [--seed 42] [--customers N] ...``.

Content (customers, products, order numbers, items, statuses, refunds) depends only on ``--seed``
and the sizes. Timestamps are generated as offsets before a reference instant ``now`` and stored
as naive UTC: ``--now`` fixes it (tests), the default is the real current time, so the newest
orders are hours old, shipped orders have ETAs in the coming days and "delivered within 30 days"
refunds can be demoed whenever the database is (re)seeded. Seeding again with the same seed gives
the same data shifted in time.

The first four customers are fixed demo people whose orders have fixed numbers (190001-190013,
refunds RF-590001..) and known states; see ``DEMO_CUSTOMERS`` / ``bot/seed_demo.md``.
History orders are numbered 100001.. in chronological order.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Connection, func, insert, select, text

from bot.db import models as m
from bot.db.base import utcnow
from bot.db.migrate import upgrade
from bot.db.session import get_engine
from bot.seed_catalog import (
    CARRIERS,
    CATEGORIES,
    CITIES,
    FIRST_NAMES,
    HUBS,
    LAST_NAMES,
    MODEL_CODES,
    STREETS,
    WAREHOUSE,
    ProductType,
)
from bot.seed_feedback import generate as generate_support

CENT = Decimal("0.01")
HISTORY_DAYS = 730
DEMO_ORDER_START = 190001
DEMO_REFUND_START = 590001
MAX_ORDERS = 80000  # keeps history numbers (100001..) below the demo block
PAYMENT_WEIGHTS = (("card", 62), ("paypal", 24), ("gift_card", 6), ("bank_transfer", 8))


# --- demo customers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOrder:
    number: str
    state: str  # order status
    note: str  # what it demonstrates
    product_types: tuple[str, ...]
    created_days_ago: float
    delivered_days_ago: float | None = None
    eta_in_days: float | None = None
    method: str = "card"
    refund: tuple[str, str, str, int | None] | None = None  # (number, kind, status, item index|None)


@dataclass(frozen=True)
class DemoCustomer:
    id: int
    name: str
    email: str
    tier: str
    newsletter: bool
    favourites: tuple[str, ...]
    address: tuple[str, str, str]  # line1, city, postcode
    orders: tuple[DemoOrder, ...] = field(default_factory=tuple)


DEMO_CUSTOMERS: tuple[DemoCustomer, ...] = (
    DemoCustomer(
        1,
        "Alice Martin",
        "alice.martin@example.com",
        "gold",
        True,
        ("cameras", "coffee"),
        ("12 Rose Street", "Springfield", "62704"),
        (
            DemoOrder(
                "190001",
                "shipped",
                "in transit, ETA in 2 days: cancel refused (already_shipped)",
                ("Mirrorless Camera", "Memory Card"),
                3,
                eta_in_days=2,
            ),
            DemoOrder(
                "190002",
                "processing",
                "paid, not shipped: cancellable, address changeable",
                ("Coffee Grinder", "Coffee Beans"),
                0.25,
            ),
            DemoOrder(
                "190003",
                "delivered",
                "delivered 5 days ago: refund eligible",
                ("Camera Lens", "Tripod"),
                10,
                delivered_days_ago=5,
            ),
            DemoOrder(
                "190004",
                "delivered",
                "delivered 45 days ago: refund refused (window_expired)",
                ("Camera Bag",),
                50,
                delivered_days_ago=45,
            ),
        ),
    ),
    DemoCustomer(
        2,
        "Bob Nguyen",
        "bob.nguyen@example.com",
        "silver",
        False,
        ("audio", "computers"),
        ("48 Harbor Road", "Portland", "97205"),
        (
            DemoOrder(
                "190005",
                "pending",
                "awaiting bank transfer: cancellable, no invoice yet",
                ("Wireless Headphones",),
                0.05,
                method="bank_transfer",
            ),
            DemoOrder(
                "190006",
                "delivered",
                "delivered 12 days ago; refund RF-590001 (requested) for the sleeve",
                ("Laptop", "Laptop Sleeve"),
                16,
                delivered_days_ago=12,
                refund=("RF-590001", "refund", "requested", 1),
            ),
            DemoOrder(
                "190007",
                "cancelled",
                "cancelled and refunded (RF-590002 completed)",
                ("Bluetooth Speaker",),
                30,
                refund=("RF-590002", "refund", "completed", None),
            ),
        ),
    ),
    DemoCustomer(
        3,
        "Carla Rossi",
        "carla.rossi@example.com",
        "standard",
        True,
        ("kitchen", "books"),
        ("7 Orchard Lane", "Austin", "78701"),
        (
            DemoOrder(
                "190008",
                "returned",
                "returned; return RF-590003 completed",
                ("Stand Mixer",),
                45,
                delivered_days_ago=40,
                refund=("RF-590003", "return", "completed", None),
            ),
            DemoOrder(
                "190009",
                "delivered",
                "delivered 2 days ago, 3 items: per-item refund",
                ("Chef's Knife", "Cutting Board", "Cookbook"),
                6,
                delivered_days_ago=2,
            ),
            DemoOrder(
                "190010", "shipped", "out for delivery today", ("Cast Iron Skillet",), 4, eta_in_days=0.1
            ),
        ),
    ),
    DemoCustomer(
        4,
        "David Okafor",
        "david.okafor@example.com",
        "standard",
        False,
        ("outdoors", "phones"),
        ("233 Highland Road", "Denver", "80202"),
        (
            DemoOrder(
                "190011",
                "processing",
                "paid with PayPal: change the shipping address",
                ("Tent", "Sleeping Bag"),
                1,
                method="paypal",
            ),
            DemoOrder(
                "190012",
                "delivered",
                "delivered 20 days ago: refund eligible",
                ("Smartphone", "Phone Case"),
                25,
                delivered_days_ago=20,
            ),
            DemoOrder(
                "190013",
                "delivered",
                "delivered 90 days ago: refund refused",
                ("Hiking Backpack",),
                95,
                delivered_days_ago=90,
            ),
        ),
    ),
)


def demo_markdown() -> str:
    """The table of demo customers for the README (also written to ``bot/seed_demo.md``)."""
    lines = [
        "# Demo customers (`python -m bot.seed`)",
        "",
        "Stable across runs and sizes. Dates are relative to the time of seeding, so re-seed",
        "(`python -m bot.seed`) if the demo database is older than a few days.",
        "Verify in chat with an order number plus the email, or sign a website token for the id.",
        "",
        "| id | name | email | orders (state: what it demonstrates) |",
        "|---|---|---|---|",
    ]
    for c in DEMO_CUSTOMERS:
        orders = "<br>".join(f"#{o.number} {o.state}: {o.note}" for o in c.orders)
        lines.append(f"| {c.id} | {c.name} | {c.email} | {orders} |")
    return "\n".join(lines) + "\n"


# --- generation -------------------------------------------------------------------------------


@dataclass
class SeedStats:
    customers: int = 0
    products: int = 0
    orders: int = 0
    order_items: int = 0
    shipments: int = 0
    tracking_events: int = 0
    payments: int = 0
    refunds: int = 0
    invoices: int = 0
    addresses: int = 0
    seconds: float = 0.0
    skipped: bool = False


def _price(rng: random.Random, lo: float, hi: float) -> Decimal:
    return Decimal(f"{int(rng.uniform(lo, hi))}.99") if hi >= 20 else Decimal(f"{rng.uniform(lo, hi):.2f}")


def _article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


class _Gen:
    """Holds the rows being generated; ids are assigned here so FKs link without round trips."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.rows: dict[str, list[dict]] = {k: [] for k in TABLE_ORDER}
        self.ids = {k: itertools.count(1) for k in self.rows}
        self.products_by_type: dict[str, list[int]] = {}
        self.product_weights: dict[str, list[float]] = {}
        self.type_of: dict[int, ProductType] = {}
        self.category_of: dict[int, str] = {}
        self.price_of: dict[int, Decimal] = {}
        self.types_by_category: dict[str, list[ProductType]] = {}
        self.default_address: dict[int, int] = {}
        self.city_of: dict[int, str] = {}
        self.refund_counter = itertools.count(500001)

    # products ----------------------------------------------------------------------------
    def products(self, n: int) -> None:
        rng = self.rng
        all_types = [(c, t) for c in CATEGORIES for t in c.types]
        for c in CATEGORIES:
            self.types_by_category[c.name] = list(c.types)
        names: set[str] = set()
        descriptions: set[str] = set()
        for i in range(n):
            cat, ptype = all_types[i % len(all_types)]
            for _attempt in range(200):
                brand = rng.choice(cat.brands)
                series = rng.choice(ptype.series) if ptype.series else rng.choice(MODEL_CODES)
                name = ptype.name_fmt.format(brand=brand, series=series, type=ptype.name)
                adj = rng.choice(cat.adjectives)
                f1, f2 = rng.sample(ptype.features, 2)
                maker = "by" if cat.name == "books" else "from"
                desc = (
                    f"{_article(adj)} {adj} {ptype.name.lower()} {maker} {brand} with {f1} and {f2}. "
                    f"{rng.choice(cat.uses)}"
                )
                if name not in names and desc not in descriptions:
                    break
            else:  # vocabulary exhausted: disambiguate by number
                name = f"{name} {i + 1}"
                desc = f"{desc} Edition {i + 1}."
            names.add(name)
            descriptions.add(desc)
            pid = next(self.ids["products"])
            price = _price(rng, *ptype.price)
            self.rows["products"].append(
                {
                    "id": pid,
                    "sku": f"{cat.name[:3].upper()}-{pid:05d}",
                    "name": name,
                    "category": cat.name,
                    "description": desc,
                    "price": price,
                    "stock": 0 if rng.random() < 0.05 else rng.randint(3, 250),
                    "consumable": ptype.consumable,
                }
            )
            self.products_by_type.setdefault(ptype.name, []).append(pid)
            self.type_of[pid] = ptype
            self.category_of[pid] = cat.name
            self.price_of[pid] = price
        for tname, pids in self.products_by_type.items():  # popularity within a type (Zipf-like)
            ranks = list(range(len(pids)))
            rng.shuffle(ranks)
            self.product_weights[tname] = [1.0 / (r + 1) ** 0.9 for r in ranks]
        self.category_type_weights = {
            c: [len(self.products_by_type.get(t.name, [])) * (0.6 if t.consumable else 1.0) for t in ts]
            for c, ts in self.types_by_category.items()
        }

    def pick_of_type(self, type_name: str) -> int | None:
        pids = self.products_by_type.get(type_name)
        if not pids:
            return None
        return self.rng.choices(pids, weights=self.product_weights[type_name])[0]

    def pick_in_category(self, category: str) -> int | None:
        types = self.types_by_category[category]
        weights = self.category_type_weights[category]
        if not any(weights):
            return None
        ptype = self.rng.choices(types, weights=weights)[0]
        return self.pick_of_type(ptype.name)

    # customers ---------------------------------------------------------------------------
    def customers(self, n: int) -> list[tuple[str, ...]]:
        rng = self.rng
        favourites: list[tuple[str, ...]] = []
        emails: set[str] = set()
        cat_names = [c.name for c in CATEGORIES]
        cat_pop = [1.0 / (i + 1) ** 0.5 for i in range(len(cat_names))]
        for demo in DEMO_CUSTOMERS[:n]:
            emails.add(demo.email)
            self._customer(
                demo.id,
                demo.name,
                demo.email,
                demo.tier,
                demo.newsletter,
                "active",
                self.now - timedelta(days=HISTORY_DAYS + 30 + demo.id),
                demo.address,
            )
            favourites.append(demo.favourites)
        for cid in range(len(favourites) + 1, n + 1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            base = f"{first}.{last}".lower()
            email = f"{base}@example.com"
            k = 2
            while email in emails:
                email = f"{base}{k}@example.com"
                k += 1
            emails.add(email)
            tier = rng.choices(("standard", "silver", "gold"), weights=(65, 25, 10))[0]
            status = "deleted" if rng.random() < 0.01 else "active"
            city, postcode = rng.choice(CITIES)
            address = (f"{rng.randint(1, 999)} {rng.choice(STREETS)}", city, postcode)
            created = self.now - timedelta(days=rng.uniform(HISTORY_DAYS * 0.3, HISTORY_DAYS + 400))
            self._customer(cid, f"{first} {last}", email, tier, rng.random() < 0.4, status, created, address)
            k_fav = rng.choices((1, 2, 3), weights=(35, 45, 20))[0]
            favs: list[str] = []
            while len(favs) < k_fav:
                c = rng.choices(cat_names, weights=cat_pop)[0]
                if c not in favs:
                    favs.append(c)
            favourites.append(tuple(favs))
            if rng.random() < 0.25:  # a second, non-default address
                city2, pc2 = rng.choice(CITIES)
                self._address(cid, f"{rng.randint(1, 999)} {rng.choice(STREETS)}", city2, pc2, False, created)
        return favourites

    def _customer(self, cid, name, email, tier, newsletter, status, created, address) -> None:  # noqa: ANN001
        self.rows["customers"].append(
            {
                "id": cid,
                "name": name,
                "email": email,
                "phone": f"+1-555-{self.rng.randint(100, 999)}-{self.rng.randint(1000, 9999)}",
                "tier": tier,
                "newsletter": newsletter,
                "status": status,
                "created_at": created,
            }
        )
        aid = self._address(cid, address[0], address[1], address[2], True, created)
        self.default_address[cid] = aid
        self.city_of[cid] = address[1]

    def _address(self, cid, line1, city, postcode, default, created) -> int:  # noqa: ANN001
        aid = next(self.ids["addresses"])
        self.rows["addresses"].append(
            {
                "id": aid,
                "customer_id": cid,
                "line1": line1,
                "line2": None,
                "city": city,
                "postcode": postcode,
                "country": "United States",
                "is_default": default,
                "created_at": created,
            }
        )
        return aid

    # orders ------------------------------------------------------------------------------
    def history(self, n_orders: int, favourites: list[tuple[str, ...]]) -> None:
        rng = self.rng
        n_customers = len(favourites)
        activity = [rng.paretovariate(1.6) for _ in range(n_customers)]
        cum = list(itertools.accumulate(activity))
        cat_names = [c.name for c in CATEGORIES]
        plans: list[tuple[datetime, int]] = []
        for _ in range(n_orders):
            cidx = bisect.bisect_left(cum, rng.random() * cum[-1])
            cid = min(cidx, n_customers - 1) + 1
            oldest = 60 if cid <= len(DEMO_CUSTOMERS) else 0  # keep demo customers' recent view clean
            # slight growth: more orders recently
            age = HISTORY_DAYS * (1 - rng.random() ** 0.85)
            age = max(age, oldest + rng.random() * 5) if oldest else age
            plans.append((self.now - timedelta(days=age), cid))
        plans.sort()
        consumables: dict[int, list[int]] = {}
        for number, (created, cid) in enumerate(plans, start=100001):
            favs = favourites[cid - 1]
            picks: list[int] = []
            category = rng.choice(favs) if rng.random() < 0.85 else rng.choice(cat_names)
            primary = self.pick_in_category(category)
            if primary is not None:
                picks.append(primary)
                comps = self.type_of[primary].complements
                if comps and rng.random() < 0.6:
                    for comp in rng.sample(comps, min(len(comps), rng.choice((1, 1, 2)))):
                        pid = self.pick_of_type(comp)
                        if pid is not None:
                            picks.append(pid)
            mine = consumables.get(cid)
            if mine and rng.random() < 0.45:
                picks.append(rng.choice(mine))
            if rng.random() < 0.2:
                extra = self.pick_in_category(rng.choice(favs))
                if extra is not None:
                    picks.append(extra)
            picks = list(dict.fromkeys(picks))
            if not picks:
                continue
            for pid in picks:
                if self.type_of[pid].consumable:
                    lst = consumables.setdefault(cid, [])
                    if pid not in lst:
                        lst.append(pid)
            self._order(str(number), cid, created, picks)

    def _order(
        self, number: str, cid: int, created: datetime, picks: list[int], demo: DemoOrder | None = None
    ) -> None:
        rng = self.rng
        now = self.now
        oid = next(self.ids["orders"])
        total = Decimal(0)
        item_ids: list[int] = []
        for pid in picks:
            qty = rng.choice((1, 1, 2, 3)) if self.type_of[pid].consumable and demo is None else 1
            iid = next(self.ids["order_items"])
            item_ids.append(iid)
            price = self.price_of[pid]
            total += price * qty
            self.rows["order_items"].append(
                {"id": iid, "order_id": oid, "product_id": pid, "quantity": qty, "unit_price": price}
            )
        total = total.quantize(CENT)
        method = demo.method if demo else rng.choices(*zip(*PAYMENT_WEIGHTS, strict=True))[0]
        # timeline
        if method == "bank_transfer":
            paid_at = created + timedelta(hours=rng.uniform(10, 48))
        else:
            paid_at = created + timedelta(minutes=rng.uniform(1, 10))
        shipped_at = paid_at + timedelta(hours=rng.uniform(8, 36))
        transit = timedelta(days=rng.uniform(2, 5))
        eta = shipped_at + transit + timedelta(hours=rng.uniform(-12, 12))
        delivered_at = shipped_at + transit
        if demo is not None:  # fixed story
            paid_at = created + timedelta(minutes=5)
            if demo.delivered_days_ago is not None:
                delivered_at = now - timedelta(days=demo.delivered_days_ago)
                shipped_at = delivered_at - timedelta(days=3)
                eta = delivered_at
            elif demo.eta_in_days is not None:
                shipped_at = created + timedelta(days=1)
                eta = now + timedelta(days=demo.eta_in_days)
                delivered_at = eta  # in the future: not delivered yet
            status = demo.state
            if status == "pending":
                paid_at = now + timedelta(days=1)
        else:
            if paid_at > now:
                status = "pending"
            elif shipped_at > now:
                status = "processing"
            elif delivered_at > now:
                status = "shipped"
            else:
                status = "delivered"
            age_days = (now - created).total_seconds() / 86400
            if age_days > 1 and rng.random() < 0.04:
                status = "cancelled"
            elif status == "delivered" and (now - delivered_at).days > 14 and rng.random() < 0.03:
                status = "returned"
        cancelled_at = created + timedelta(hours=rng.uniform(1, 12))
        updated = {
            "pending": created,
            "processing": paid_at,
            "shipped": shipped_at,
            "delivered": delivered_at,
            "cancelled": cancelled_at,
            "returned": delivered_at + timedelta(days=7),
        }[status]
        self.rows["orders"].append(
            {
                "id": oid,
                "number": number,
                "customer_id": cid,
                "status": status,
                "shipping_address_id": self.default_address[cid],
                "total": total,
                "created_at": created,
                "updated_at": min(updated, now),
            }
        )
        # payment
        paid = paid_at <= now and not (status == "cancelled" and method == "bank_transfer")
        pay_status = "paid" if paid else ("failed" if status == "cancelled" else "pending")
        if status in ("cancelled", "returned") and paid:
            pay_status = "refunded"
        self.rows["payments"].append(
            {
                "id": next(self.ids["payments"]),
                "order_id": oid,
                "method": method,
                "amount": total,
                "status": pay_status,
                "paid_at": paid_at if paid else None,
            }
        )
        if paid:
            self.rows["invoices"].append(
                {
                    "id": next(self.ids["invoices"]),
                    "number": f"INV-{number}",
                    "order_id": oid,
                    "amount": total,
                    "issued_at": paid_at,
                }
            )
        # shipment + tracking
        if status in ("shipped", "delivered", "returned"):
            self._shipment(oid, cid, status, shipped_at, eta, delivered_at)
        # refunds
        refund = demo.refund if demo else None
        if demo is None:
            if status == "cancelled" and paid:
                refund = (None, "refund", "completed", None)
            elif status == "returned":
                refund = (None, "return", "completed", None)
            elif status == "delivered" and rng.random() < 0.025:
                recent = (now - delivered_at).days < 7
                refund = (
                    None,
                    rng.choice(("refund", "return")),
                    "requested" if recent else rng.choice(("completed", "completed", "rejected", "approved")),
                    rng.randrange(len(picks)),
                )
        if refund is not None:
            rnumber, kind, rstatus, item_idx = refund
            if rnumber is None:
                rnumber = f"RF-{next(self.refund_counter)}"
            if item_idx is None:
                amount, item_id = total, None
            else:
                row = self.rows["order_items"][-len(picks) + item_idx]
                amount, item_id = (row["unit_price"] * row["quantity"]).quantize(CENT), row["id"]
            base = {"cancelled": cancelled_at, "returned": delivered_at + timedelta(days=2)}.get(
                status, delivered_at + timedelta(days=1)
            )
            rcreated = min(base, now - timedelta(hours=1))
            reasons = {
                "return": (
                    "Doesn't fit my needs",
                    "Arrived damaged",
                    "Wrong item received",
                    "Changed my mind",
                ),
                "refund": ("Item arrived damaged", "Not as described", "Stopped working", "Missing parts"),
            }
            reason = "Order cancelled by customer" if status == "cancelled" else rng.choice(reasons[kind])
            self.rows["refunds"].append(
                {
                    "id": next(self.ids["refunds"]),
                    "number": rnumber,
                    "order_id": oid,
                    "order_item_id": item_id,
                    "kind": kind,
                    "status": rstatus,
                    "amount": amount,
                    "reason": reason,
                    "created_at": rcreated,
                    "updated_at": min(rcreated + timedelta(days=3), now)
                    if rstatus != "requested"
                    else rcreated,
                }
            )

    def _shipment(self, oid, cid, status, shipped_at, eta, delivered_at) -> None:  # noqa: ANN001
        rng, now = self.rng, self.now
        carrier = rng.choice(CARRIERS)
        if carrier == "UPS":
            tracking = "1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXYZ", k=16))
        elif carrier == "USPS":
            tracking = "9400" + "".join(rng.choices("0123456789", k=18))
        elif carrier == "FedEx":
            tracking = "".join(rng.choices("0123456789", k=12))
        else:
            tracking = "".join(rng.choices("0123456789", k=10))
        sid = next(self.ids["shipments"])
        city = self.city_of[cid]
        hub = rng.choice(HUBS)
        events = [
            (shipped_at - timedelta(hours=2), WAREHOUSE, "Shipping label created"),
            (shipped_at, WAREHOUSE, f"Picked up by {carrier}"),
            (shipped_at + (delivered_at - shipped_at) * 0.35, hub, "Arrived at sorting facility"),
            (shipped_at + (delivered_at - shipped_at) * 0.5, hub, "Departed sorting facility, in transit"),
            (delivered_at - timedelta(hours=5), city, "Out for delivery"),
            (delivered_at, city, "Delivered"),
        ]
        if status == "returned":
            events.append((delivered_at + timedelta(days=6), WAREHOUSE, "Return received at warehouse"))
        visible = [e for e in events if e[0] <= now]
        last = visible[-1][2] if visible else ""
        ship_status = (
            "returned"
            if status == "returned"
            else "delivered"
            if status == "delivered"
            else "out_for_delivery"
            if last == "Out for delivery"
            else "in_transit"
            if len(visible) > 1
            else "label_created"
        )
        self.rows["shipments"].append(
            {
                "id": sid,
                "order_id": oid,
                "carrier": carrier,
                "tracking_number": tracking,
                "status": ship_status,
                "shipped_at": shipped_at,
                "eta": eta,
                "delivered_at": delivered_at if status in ("delivered", "returned") else None,
            }
        )
        for occurred, location, description in visible:
            self.rows["tracking_events"].append(
                {
                    "id": next(self.ids["tracking_events"]),
                    "shipment_id": sid,
                    "occurred_at": occurred,
                    "location": location,
                    "description": description,
                }
            )

    def demo_orders(self, n_customers: int) -> None:
        for demo in DEMO_CUSTOMERS[:n_customers]:
            for order in demo.orders:
                picks = []
                for type_name in order.product_types:
                    pids = self.products_by_type.get(type_name)
                    if pids:
                        picks.append(pids[0])
                if picks:
                    created = self.now - timedelta(days=order.created_days_ago)
                    self._order(order.number, demo.id, created, picks, demo=order)


# --- database ---------------------------------------------------------------------------------

TABLE_ORDER = (
    "customers",
    "addresses",
    "products",
    "orders",
    "order_items",
    "shipments",
    "tracking_events",
    "payments",
    "refunds",
    "invoices",
)
ALL_TABLES = ("feedback", "interactions", "support_tickets", *TABLE_ORDER)


def _wipe(conn: Connection) -> None:
    for name in reversed(ALL_TABLES):
        conn.execute(m.Base.metadata.tables[name].delete())


def _reset_sequences(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    for name in ALL_TABLES:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - fixed table names
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            )
        )


def seed(
    url: str | None = None,
    *,
    seed: int = 42,
    customers: int = 1000,
    products: int = 320,
    orders: int = 12000,
    now: datetime | None = None,
    if_empty: bool = False,
    migrate: bool = True,
    progress: Callable[[str], None] | None = print,
) -> SeedStats:
    """Fill the database at ``url`` (default: settings) with the deterministic demo shop.

    Existing shop data is replaced unless ``if_empty`` is set and customers already exist.
    """
    say = progress or (lambda _msg: None)
    if customers < len(DEMO_CUSTOMERS) or products < 1 or orders < 0 or orders > MAX_ORDERS:
        raise ValueError(
            f"need customers >= {len(DEMO_CUSTOMERS)}, products >= 1, 0 <= orders <= {MAX_ORDERS}"
        )
    started = time.perf_counter()
    if migrate:
        say("migrating schema ...")
        upgrade(url)
    engine = get_engine(url)
    stats = SeedStats()
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(m.Customer))
    if if_empty and existing:
        say(f"database already has {existing} customers: nothing to do (--if-empty)")
        stats.skipped = True
        return stats
    if now is not None and now.tzinfo is not None:  # store naive UTC
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    now = (now or utcnow()).replace(microsecond=0)
    gen = _Gen(seed, now)
    say(f"generating {products} products ...")
    gen.products(products)
    say(f"generating {customers} customers ...")
    favourites = gen.customers(customers)
    say(f"generating {orders} orders over {HISTORY_DAYS} days ...")
    gen.history(orders, favourites)
    gen.demo_orders(customers)
    say("generating support history (complaints, ratings, chats) ...")
    names = {p["id"]: p["name"] for p in gen.rows["products"]}
    support = generate_support(gen.rows, names, now, seed)
    say(f"generated in {time.perf_counter() - started:.1f}s; writing ...")
    with engine.begin() as conn:
        if existing:
            say("removing previous data ...")
            _wipe(conn)
        for name in TABLE_ORDER:
            rows = gen.rows[name]
            table = m.Base.metadata.tables[name]
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start : start + 5000])
            setattr(stats, name, len(rows))
            say(f"  {name}: {len(rows)} rows")
        for name, rows in support.items():
            for start in range(0, len(rows), 5000):
                conn.execute(insert(m.Base.metadata.tables[name]), rows[start : start + 5000])
            say(f"  {name}: {len(rows)} rows")
        _reset_sequences(conn)
    stats.seconds = time.perf_counter() - started
    say(f"seeded in {stats.seconds:.1f}s")
    return stats


def write_demo_markdown(path: Path | None = None) -> Path:
    path = path or Path(__file__).with_name("seed_demo.md")
    path.write_text(demo_markdown(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Seed the Concierge database with a deterministic demo shop."
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or var/concierge.db)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--products", type=int, default=320)
    parser.add_argument("--orders", type=int, default=12000)
    parser.add_argument("--now", type=datetime.fromisoformat, help="reference time, naive UTC (default: now)")
    parser.add_argument("--if-empty", action="store_true", help="do nothing when customers already exist")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--demo-md", action="store_true", help="(re)write bot/seed_demo.md and exit")
    args = parser.parse_args(argv)
    if args.demo_md:
        print(f"wrote {write_demo_markdown()}")
        return 0
    try:
        seed(
            args.url,
            seed=args.seed,
            customers=args.customers,
            products=args.products,
            orders=args.orders,
            now=args.now,
            if_empty=args.if_empty,
            progress=None if args.quiet else print,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
