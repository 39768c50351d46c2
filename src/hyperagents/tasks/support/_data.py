"""The generator of the ``support`` task's requests (see the package docstring).

Pure standard library: ``random.Random`` streams are stable across Python versions for the
methods used here (``random``, ``choice``, ``randrange``, ``shuffle``), so a seed gives the same
requests everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CATEGORIES", "CHANNELS", "HARD_SHARE", "Request", "draw_request", "generate_split"]

CATEGORIES = ("billing", "refund", "shipping", "account", "technical", "cancellation")
"""The categories, in the order the knowledge base lists them."""

CHANNELS = ("email", "chat", "web form")
"""The channels a request comes through (drawn uniformly by default)."""

#: How often each category is drawn.
_WEIGHTS = {
    "billing": 0.2,
    "refund": 0.17,
    "shipping": 0.18,
    "account": 0.16,
    "technical": 0.17,
    "cancellation": 0.12,
}

_PRODUCTS = (
    "the Pro plan",
    "my annual subscription",
    "the wireless headphones",
    "the standing desk",
    "the coffee grinder",
    "the family plan",
    "the smart thermostat",
    "the backpack",
)
_APPS = (
    "the iOS app",
    "the Android app",
    "the desktop app",
    "the website",
    "the browser extension",
)
_GREETINGS = ("", "", "Hi, ", "Hello, ", "Hi there! ", "Good morning. ", "Hey, ")
_SIGNOFFS = ("", "", " Thanks.", " Thank you!", " Please help.", " Regards, Sam.", " Cheers.")
_ASIDES = (
    "",
    "",
    "",
    " I have been a customer for years.",
    " This is the second time I am writing.",
    " I am travelling next week.",
    " My colleague had the same problem last month.",
)

# Templates: {p} a product, {a} an app, {n} an order number, {x} an amount, {d} a number of days.
# "easy" ones use the category's own vocabulary; "hard" ones borrow another category's words and
# are settled by the routing rules of the knowledge base (kb.md in the seed program).
_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "easy": (
            "I was charged twice for {p} this month.",
            "My invoice shows ${x} but the price was lower.",
            "Can you send me the invoice for order {n}?",
            "How do I update the credit card on file for {p}?",
            "There is a charge of ${x} on my statement that I do not recognise.",
            "Why did my bill go up to ${x}?",
            "Please add my company's VAT number to my invoices.",
        ),
        "hard": (
            "Please cancel the duplicate charge of ${x} on my card.",
            "I cancelled nothing but I was billed ${x} again; fix the charge, do not refund me "
            "later.",
            "The app shows an error on the payment page, and my card was charged ${x} anyway.",
            "I cannot find where to download my receipts in my account settings.",
        ),
    },
    "refund": {
        "easy": (
            "I returned {p} {d} days ago; when will I get my money back?",
            "I would like a refund for order {n}.",
            "Where is my refund for {p}? It has been {d} days.",
            "Can I get my money back for {p}? It is not what I expected.",
            "I sent {p} back and have not received the refund yet.",
        ),
        "hard": (
            "The package with {p} arrived broken; I want my money back, not a replacement.",
            "Please cancel order {n} and refund me, it has already shipped so I will return it.",
            "I was told my refund of ${x} was issued but my bank statement does not show it.",
            "My account says the return was received; where is the ${x}?",
        ),
    },
    "shipping": {
        "easy": (
            "Where is my package? Order {n} was supposed to arrive {d} days ago.",
            "The tracking number for order {n} does not work.",
            "Can I change the delivery address for order {n}?",
            "My order {n} still says 'preparing to ship'.",
            "Do you ship {p} to Canada?",
            "The courier left {p} at the wrong house.",
        ),
        "hard": (
            "Order {n} is late; if it does not come this week I will have to cancel it.",
            "I paid ${x} for express delivery and order {n} is still not here.",
        ),
    },
    "account": {
        "easy": (
            "I forgot my password and the reset email never arrives.",
            "How do I change the email address on my account?",
            "My account is locked after too many login attempts.",
            "I lost my phone and cannot get the two-factor code.",
            "Someone else may have logged into my account.",
            "Can I merge my two accounts into one?",
        ),
        "hard": (
            "I want to change the name on my account; the invoices should show the new one.",
            "Please add my partner to the family plan so they can log in.",
            "I cannot log in to my account, so I cannot see my invoices.",
        ),
    },
    "technical": {
        "easy": (
            "{a} crashes every time I open it.",
            "Sync between {a} and the website stopped working.",
            "I get 'error 503' when I try to upload a file in {a}.",
            "{a} is extremely slow since the last update.",
            "Notifications in {a} do not show up any more.",
            "The export button in {a} does nothing.",
        ),
        "hard": (
            "{a} crashes on the login screen before I can type my password.",
            "The checkout page in {a} freezes when I press 'pay'.",
            "{a} shows someone else's order history after the update.",
            "The 'cancel subscription' button in {a} gives an error 500.",
            "The tracking page crashes, so I cannot see where order {n} is.",
        ),
    },
    "cancellation": {
        "easy": (
            "Please cancel my subscription to {p}.",
            "I want to stop my membership at the end of this month.",
            "How do I cancel {p} before the renewal?",
            "Cancel order {n}, I ordered it by mistake and it has not shipped yet.",
            "Do not renew {p}; I no longer need it.",
        ),
        "hard": (
            "Please close my account and stop charging me.",
            "I do not want to be billed for {p} next year, end it now.",
            "Delete my account, I am moving to another service.",
        ),
    },
}

#: Share of requests drawn from the "hard" templates.
HARD_SHARE = 0.4


@dataclass(frozen=True)
class Request:
    """One generated request: the customer's message and the category it belongs to."""

    message: str
    channel: str
    category: str
    hard: bool


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        p=rng.choice(_PRODUCTS),
        a=rng.choice(_APPS),
        n=f"#{rng.randrange(10000, 99999)}",
        x=f"{rng.randrange(5, 400)}.{rng.randrange(0, 100):02d}",
        d=rng.randrange(3, 30),
    )


def _draw_weighted(rng: random.Random, weights: Mapping[str, float], names: Sequence[str]) -> str:
    u = rng.random() * sum(weights.get(name, 0.0) for name in names)
    total = 0.0
    for name in names:
        total += weights.get(name, 0.0)
        if u < total:
            return name
    return names[-1]


def draw_request(
    rng: random.Random,
    *,
    weights: Mapping[str, float] | None = None,
    hard_share: float = HARD_SHARE,
    channels: Mapping[str, float] | None = None,
) -> Request:
    """Draw one request from ``rng``.

    Args:
        rng: The random stream (advanced).
        weights: How often each category is drawn (None: the task's weights); need not sum
            to 1.
        hard_share: Share of requests drawn from the "hard" templates.
        channels: How often each channel is drawn (None: uniformly).

    Returns:
        The request. With the defaults, the draws are those :func:`generate_split` makes.
    """
    category = _draw_weighted(rng, weights or _WEIGHTS, CATEGORIES)
    hard = rng.random() < hard_share
    templates = _TEMPLATES[category]["hard" if hard else "easy"]
    body = _fill(rng.choice(templates), rng)
    greeting = rng.choice(_GREETINGS)
    body = body[0].upper() + body[1:]
    if greeting.endswith(", ") and not body.startswith("I "):
        body = body[0].lower() + body[1:]
    text = greeting + body + rng.choice(_ASIDES) + rng.choice(_SIGNOFFS)
    channel = rng.choice(CHANNELS) if channels is None else _draw_weighted(rng, channels, CHANNELS)
    return Request(text.strip(), channel, category, hard)


def generate_split(seed: int, split_index: int, n: int) -> Sequence[Request]:
    """Generate the ``n`` requests of one split.

    Args:
        seed: The task's seed.
        split_index: 0 train, 1 val, 2 test (each split has its own stream).
        n: Number of requests.

    Returns:
        The requests, in order.
    """
    rng = random.Random(f"hyperagents.support:{seed}:{split_index}")
    return [draw_request(rng) for _ in range(n)]
