"""Writes the demo warehouse CSVs: six months of card payments around the seed rows, with a few planted incidents."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
RANDOM_SEED = 20231101
FIRST_DAY = dt.date(2023, 5, 1)  # a Monday
LAST_DAY = dt.date(2023, 11, 1)  # a Wednesday, the generated "today": init_db.py maps it onto the day you build
MIDNIGHT = dt.datetime.combine(LAST_DAY, dt.time())  # start of "today"; incidents are placed relative to it
END = MIDNIGHT + dt.timedelta(days=1)  # nothing is generated at or after the end of "today"
FIRST_GENERATED_ID = 1001

ORDERS_PER_DAY = 420  # mid-history weekday average; the business grows about 25% over the six months
GROWTH = 0.25
DAY_NOISE = 0.04  # day-to-day swings beyond Poisson noise
WEEKDAY_FACTOR = (0.95, 1.0, 1.0, 1.05, 1.15, 0.75, 0.65)  # Monday .. Sunday
# UTC hour of day: a quiet night (customers in the Americas keep it from going to zero), lunch and evening peaks.
HOUR_WEIGHT = (
    0.40, 0.32, 0.28, 0.26, 0.28, 0.36, 0.55, 0.80, 1.00, 1.10, 1.15, 1.20,
    1.30, 1.25, 1.15, 1.10, 1.15, 1.25, 1.40, 1.50, 1.45, 1.20, 0.85, 0.58,
)  # fmt: skip

PAYMENT_METHODS = (("card", 0.68), ("apple_pay", 0.14), ("google_pay", 0.10), ("paypal", 0.08))
AUTH_FAIL = {"card": 0.05, "apple_pay": 0.02, "google_pay": 0.02, "paypal": 0.03}
AUTH_RETRY = 0.55  # share of customers who try again after a declined authorisation
VOID_RATE = 0.06
SETTLE_FAIL_RATE = 0.005

# Planted incidents, all continuing up to "now" whatever the hour at which init_db.py runs.
CHECKOUT_OUTAGE_MERCHANT = 5  # Pixelforge Games: no orders since 18:00 yesterday
CHECKOUT_OUTAGE_START = MIDNIGHT - dt.timedelta(hours=6)
ACQUIRER_OUTAGE_START = MIDNIGHT - dt.timedelta(hours=4)  # declines jump from 2-5% to 65% at 20:00 yesterday
ACQUIRER_OUTAGE_FAIL = 0.65
CAPTURE_STALL_MERCHANT = 3  # Bramble & Birch Home: its capture job stopped settling four days ago
CAPTURE_STALL_START = MIDNIGHT - dt.timedelta(days=4)
BAD_AMOUNT_MERCHANT = 7  # Solstice Fashion: a release at 16:00 yesterday sends NULL and negative amounts
BAD_AMOUNT_START = MIDNIGHT - dt.timedelta(hours=8)
BAD_AMOUNT_NULL, BAD_AMOUNT_NEGATIVE = 0.12, 0.05
# A loader retry double-posts settlements: one duplicate near each of these times.
DUPLICATE_AT = tuple(MIDNIGHT + dt.timedelta(hours=h) for h in (-5, -2, 2, 6, 10, 14, 18, 22))
# Orders authorised weeks ago that were never settled or voided, and one settled after 8 days: (days ago, merchant).
STUCK_ORDERS = ((33, 7), (19, 2), (12, 6))
LATE_SETTLED_ORDER = (15, 1)
LATE_SETTLE_DELAY = dt.timedelta(days=8, hours=3)

# The original one-check script's rows, kept verbatim (ids 1-10 and 1-19).
SEED_ORDERS = """\
id,created_date,merchant_id
1,2023-05-15 17:48:00,1
2,2023-05-16 01:06:00,2
3,2023-05-16 12:46:00,2
4,2023-05-16 22:44:00,3
5,2023-05-15 10:02:00,1
6,2023-05-16 10:02:00,1
7,2023-05-17 19:36:00,2
8,2023-05-17 19:36:00,4
9,2023-05-17 19:36:00,4
10,2023-05-17 19:36:00,4
"""
SEED_TRANSACTIONS = """\
id,created_date,transaction_type,order_id,transaction_status
1,2023-05-15 17:48:00,auth,1,success
2,2023-05-16 01:06:00,auth,2,success
3,2023-05-16 12:46:00,auth,3,success
4,2023-05-16 22:44:00,auth,4,success
5,2023-05-19 18:57:00,settle,1,fail
6,2023-05-20 03:50:00,void,2,success
7,2023-05-21 07:21:00,settle,3,success
8,2023-05-15 10:02:00,auth,5,success
9,2023-05-22 10:01:59,settle,5,success
10,2023-05-16 10:02:00,auth,6,success
11,2023-05-23 10:02:01,settle,6,success
12,2023-05-17 19:36:00,auth,7,success
13,2023-05-17 19:36:00,auth,8,success
14,2023-06-16 19:36:00,void,8,success
15,2023-05-17 19:36:00,auth,9,success
16,2023-05-22 19:36:00,settle,9,fail
17,2023-05-17 19:36:00,auth,10,success
18,2023-05-22 19:36:00,settle,10,fail
19,2023-05-25 19:36:00,settle,10,success
"""


@dataclass(frozen=True)
class Merchant:
    merchant_id: int
    name: str
    country: str
    currency: str
    category: str
    onboarded_date: dt.date
    share: float  # of all orders
    weekend: float  # weekend orders relative to the overall weekend dip
    median_amount: float


MERCHANTS = (
    Merchant(1, "Harbour Coffee Roasters", "GB", "GBP", "food_and_drink", dt.date(2021, 3, 8), 0.09, 1.15, 28.0),
    Merchant(2, "Kestrel Outdoor Gear", "DE", "EUR", "sporting_goods", dt.date(2020, 9, 14), 0.10, 1.10, 95.0),
    Merchant(3, "Bramble & Birch Home", "FR", "EUR", "home_and_garden", dt.date(2022, 1, 10), 0.08, 1.00, 140.0),
    Merchant(4, "Nimbus Travel", "NL", "EUR", "travel", dt.date(2019, 6, 3), 0.10, 0.60, 420.0),
    Merchant(5, "Pixelforge Games", "GB", "GBP", "digital_goods", dt.date(2021, 11, 22), 0.14, 1.30, 18.0),
    Merchant(6, "Tideway Grocers", "GB", "GBP", "grocery", dt.date(2022, 6, 1), 0.22, 0.80, 65.0),
    Merchant(7, "Solstice Fashion", "ES", "EUR", "apparel", dt.date(2022, 9, 19), 0.20, 0.90, 75.0),
    Merchant(8, "Quayside Tickets", "IE", "EUR", "events", LAST_DAY - dt.timedelta(days=42), 0.07, 1.20, 55.0),
)


@dataclass
class Order:
    created: dt.datetime
    merchant: Merchant
    order_id: int = 0
    events: list[tuple[dt.datetime, str, str]] = field(default_factory=list)  # (time, type, status)


def timestamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small (orders of one merchant in one hour)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def generate_orders(rng: random.Random) -> list[Order]:
    """Orders by merchant and hour: growth, weekday and hour-of-day shape, Poisson counts."""
    hour_share = [w / sum(HOUR_WEIGHT) for w in HOUR_WEIGHT]
    days = (LAST_DAY - FIRST_DAY).days + 1
    orders = []
    for index in range(days):
        day = FIRST_DAY + dt.timedelta(days=index)
        weekend = day.weekday() >= 5
        daily = ORDERS_PER_DAY * (1 + GROWTH * (index / days - 0.5)) * WEEKDAY_FACTOR[day.weekday()]
        daily *= rng.gauss(1.0, DAY_NOISE)
        for merchant in MERCHANTS:
            if day < merchant.onboarded_date:
                continue
            ramp = min(1.0, ((day - merchant.onboarded_date).days + 1) / 14)  # new merchants take two weeks
            per_day = daily * merchant.share * ramp * (merchant.weekend if weekend else 1.0)
            for hour, share in enumerate(hour_share):
                start = dt.datetime.combine(day, dt.time(hour))
                for _ in range(poisson(rng, per_day * share)):
                    created = start + dt.timedelta(seconds=rng.randrange(3600))
                    if merchant.merchant_id == CHECKOUT_OUTAGE_MERCHANT and created >= CHECKOUT_OUTAGE_START:
                        continue
                    orders.append(Order(created, merchant))
    orders.sort(key=lambda order: (order.created, order.merchant.merchant_id))
    for offset, order in enumerate(orders):
        order.order_id = FIRST_GENERATED_ID + offset
    return orders


def pick_method(rng: random.Random) -> str:
    return rng.choices([m for m, _ in PAYMENT_METHODS], weights=[w for _, w in PAYMENT_METHODS])[0]


def settle_delay(rng: random.Random) -> dt.timedelta:
    """Mostly one to three days; a tail up to five days. Never near the 7-day limit."""
    roll = rng.random()
    hours = rng.uniform(18, 72) if roll < 0.85 else rng.uniform(72, 96) if roll < 0.97 else rng.uniform(96, 120)
    return dt.timedelta(hours=hours)


def add_lifecycle(rng: random.Random, order: Order, method: str, planted: str | None) -> None:
    """Authorisation attempts, then a settle (sometimes after a failed one) or a void."""
    at = order.created + dt.timedelta(seconds=rng.randint(2, 90))
    authorised = None
    for attempt in range(3):
        fail = ACQUIRER_OUTAGE_FAIL if at >= ACQUIRER_OUTAGE_START else AUTH_FAIL[method]
        if planted is None and rng.random() < fail:
            order.events.append((at, "auth", "fail"))
            if attempt == 2 or rng.random() > AUTH_RETRY:
                return
            at += dt.timedelta(seconds=rng.randint(30, 600))
            continue
        order.events.append((at, "auth", "success"))
        authorised = at
        break
    if authorised is None or planted == "stuck":
        return
    if planted == "late":
        order.events.append((authorised + LATE_SETTLE_DELAY, "settle", "success"))
        return
    if rng.random() < VOID_RATE:
        order.events.append((authorised + dt.timedelta(hours=rng.uniform(0.5, 72)), "void", "success"))
        return
    settle_at = authorised + settle_delay(rng)
    if rng.random() < SETTLE_FAIL_RATE:
        order.events.append((settle_at, "settle", "fail"))
        settle_at += dt.timedelta(days=1)
    stalled = order.merchant.merchant_id == CAPTURE_STALL_MERCHANT and settle_at >= CAPTURE_STALL_START
    if not stalled:
        order.events.append((settle_at, "settle", "success"))


def planted_orders(orders: list[Order]) -> dict[int, str]:
    """The first order after 10:00 of the given merchant and day becomes stuck (never settled) or late."""
    wanted = {(MIDNIGHT - dt.timedelta(days=days), merchant): "stuck" for days, merchant in STUCK_ORDERS}
    days, merchant = LATE_SETTLED_ORDER
    wanted[(MIDNIGHT - dt.timedelta(days=days), merchant)] = "late"
    chosen = {}
    for order in orders:
        key = (dt.datetime.combine(order.created.date(), dt.time()), order.merchant.merchant_id)
        if key in wanted and order.created.hour >= 10:
            chosen[order.order_id] = wanted.pop(key)
    return chosen


def amount_for(rng: random.Random, order: Order) -> float | None:
    amount = round(rng.lognormvariate(math.log(order.merchant.median_amount), 0.6), 2)
    if order.merchant.merchant_id == BAD_AMOUNT_MERCHANT and order.created >= BAD_AMOUNT_START:
        roll = rng.random()
        if roll < BAD_AMOUNT_NULL:
            return None
        if roll < BAD_AMOUNT_NULL + BAD_AMOUNT_NEGATIVE:
            return -amount
    return amount


def read_seed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def build() -> dict[str, list[list[object]]]:
    """Every table as a header row followed by data rows."""
    rng = random.Random(RANDOM_SEED)
    merchants_by_id = {m.merchant_id: m for m in MERCHANTS}
    seed_orders = read_seed(SEED_ORDERS)
    seed_transactions = read_seed(SEED_TRANSACTIONS)
    orders = generate_orders(rng)
    planted = planted_orders(orders)

    payments = []
    amounts: dict[int, float | None] = {}
    for row in seed_orders:
        order = Order(dt.datetime.fromisoformat(row["created_date"]), merchants_by_id[int(row["merchant_id"])])
        order.order_id = int(row["id"])
        amounts[order.order_id] = amount_for(rng, order)
        payments.append([order.order_id, row["created_date"], amounts[order.order_id], order.merchant.currency, "card"])
    for order in orders:
        method = pick_method(rng)
        add_lifecycle(rng, order, method, planted.get(order.order_id))
        amounts[order.order_id] = amount_for(rng, order)
        payments.append(
            [order.order_id, timestamp(order.created), amounts[order.order_id], order.merchant.currency, method]
        )

    events = [(at, order.order_id, kind, status) for order in orders for at, kind, status in order.events if at < END]
    for target in DUPLICATE_AT:
        events.append(min(e for e in events if e[2] == "settle" and e[3] == "success" and e[0] >= target))
    events.sort()
    transactions = [[row[c] for c in row] for row in seed_transactions]
    for offset, (at, order_id, kind, status) in enumerate(events):
        transactions.append([FIRST_GENERATED_ID + offset, timestamp(at), kind, order_id, status])

    return {
        "merchants": [
            ["merchant_id", "name", "country", "currency", "category", "onboarded_date"],
            *([m.merchant_id, m.name, m.country, m.currency, m.category, m.onboarded_date] for m in MERCHANTS),
        ],
        "orders": [
            ["id", "created_date", "merchant_id"],
            *([row["id"], row["created_date"], row["merchant_id"]] for row in seed_orders),
            *([o.order_id, timestamp(o.created), o.merchant.merchant_id] for o in orders),
        ],
        "transactions": [["id", "created_date", "transaction_type", "order_id", "transaction_status"], *transactions],
        "payments": [["order_id", "created_date", "amount", "currency", "payment_method"], *payments],
        "payouts": [
            ["payout_id", "merchant_id", "payout_date", "currency", "settled_orders", "amount", "paid_at"],
            *payouts(rng, transactions, seed_orders, orders, amounts, merchants_by_id),
        ],
    }


def payouts(
    rng: random.Random,
    transactions: list[list[object]],
    seed_orders: list[dict[str, str]],
    orders: list[Order],
    amounts: dict[int, float | None],
    merchants_by_id: dict[int, Merchant],
) -> list[list[object]]:
    """One payout per merchant and day with settlements, paid at about 06:00 the next morning.

    The processor pays each order once, on the day of its first successful settle, whatever the warehouse's
    duplicate rows say.
    """
    merchant_of = {int(row["id"]): int(row["merchant_id"]) for row in seed_orders}
    merchant_of.update({o.order_id: o.merchant.merchant_id for o in orders})
    first_settle: dict[int, str] = {}
    for _, created, kind, order_id, status in transactions:
        if kind == "settle" and status == "success":
            first_settle[int(order_id)] = min(str(created), first_settle.get(int(order_id), "9999"))
    totals: dict[tuple[str, int], list[float]] = defaultdict(list)
    for order_id, created in first_settle.items():
        totals[(created[:10], merchant_of[order_id])].append(amounts[order_id] or 0.0)
    rows = []
    for payout_id, (day, merchant_id) in enumerate(sorted(totals), start=1):
        paid_at = dt.datetime.fromisoformat(day) + dt.timedelta(days=1, hours=6, seconds=rng.randrange(1800))
        if paid_at >= END:
            continue
        settled = totals[(day, merchant_id)]
        currency = merchants_by_id[merchant_id].currency
        rows.append([payout_id, merchant_id, day, currency, len(settled), round(sum(settled), 2), timestamp(paid_at)])
    return rows


def write(tables: dict[str, list[list[object]]], directory: Path = DATA_DIR) -> None:
    for name, rows in tables.items():
        with (directory / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(["" if v is None else v for v in row] for row in rows)


def main() -> None:
    tables = build()
    write(tables)
    for name, rows in tables.items():
        print(f"data/{name}.csv: {len(rows) - 1:,} rows")


if __name__ == "__main__":
    main()
