"""The carrier's tariff and the seeded parcels behind the ``shipping`` task.

The tariff (:func:`tariff_price`) is the hidden rule the task agent must reproduce; the parcels
come from ``numpy.random.default_rng([seed, split_index])``, one stream per split, so changing
one split's size never changes another split.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "SERVICES",
    "ZONES",
    "generate_split",
    "tariff_price",
]

#: Destination zones, nearest first.
ZONES: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
_ZONE_P = (0.25, 0.22, 0.18, 0.15, 0.12, 0.08)
#: Base charge and rate per billable kilogram of each zone (economy service, before fuel).
ZONE_BASE: tuple[float, ...] = (3.10, 3.60, 4.30, 5.20, 6.40, 8.10)
ZONE_PER_KG: tuple[float, ...] = (1.05, 1.30, 1.60, 2.05, 2.60, 3.40)
SERVICES: tuple[str, ...] = ("economy", "express")
EXPRESS_FACTOR = 1.55
#: Cubic centimetres per billable kilogram (volumetric weight).
VOLUMETRIC_DIVISOR = 5000.0
#: Billable weight is rounded up to a multiple of this (kg).
WEIGHT_STEP = 0.5
OVERSIZE_LENGTH_CM = 100.0
OVERSIZE_GIRTH_CM = 300.0
OVERSIZE_FEE = 22.50
RESIDENTIAL_FEE = 2.95
REMOTE_RATE = 0.12
#: Declared value covered for free, and the insurance rate above it.
INSURED_FREE = 100.0
INSURANCE_RATE = 0.015
FUEL_RATE = 0.085


def billable_weight(parcel: dict[str, Any]) -> float:
    """The larger of the actual and the volumetric weight, rounded up to :data:`WEIGHT_STEP`."""
    volume = parcel["length_cm"] * parcel["width_cm"] * parcel["height_cm"]
    weight = max(parcel["weight_kg"], volume / VOLUMETRIC_DIVISOR)
    return float(math.ceil(weight / WEIGHT_STEP - 1e-9) * WEIGHT_STEP)


def is_oversize(parcel: dict[str, Any]) -> bool:
    """Longest side over 100 cm, or length plus girth over 300 cm."""
    sides = sorted((parcel["length_cm"], parcel["width_cm"], parcel["height_cm"]), reverse=True)
    long, girth = sides[0], 2 * (sides[1] + sides[2])
    return bool(long > OVERSIZE_LENGTH_CM or long + girth > OVERSIZE_GIRTH_CM)


def tariff_price(parcel: dict[str, Any]) -> float:
    """The price the carrier charges for ``parcel``, in currency units rounded to cents."""
    zone = int(parcel["zone"]) - 1
    price = ZONE_BASE[zone] + ZONE_PER_KG[zone] * billable_weight(parcel)
    if parcel["service"] == "express":
        price *= EXPRESS_FACTOR
    if is_oversize(parcel):
        price += OVERSIZE_FEE
    if parcel["residential"]:
        price += RESIDENTIAL_FEE
    if parcel["remote"]:
        price *= 1.0 + REMOTE_RATE
    price += INSURANCE_RATE * max(parcel["declared_value"] - INSURED_FREE, 0.0)
    return round(float(price) * (1.0 + FUEL_RATE), 2)


def _parcel(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one parcel (every draw in a fixed order, from the split's stream)."""
    zone = int(rng.choice(ZONES, p=_ZONE_P))
    service = str(rng.choice(SERVICES, p=(0.7, 0.3)))
    volume = float(np.exp(rng.normal(np.log(9000.0), 1.1)))  # cm3
    shape = np.exp(rng.normal(0.0, 0.35, 3))
    if rng.random() < 0.15:  # a long parcel: a rug, a lamp, a fishing rod
        shape[0] *= 8.0
    sides = np.sort(shape / np.prod(shape) ** (1 / 3) * volume ** (1 / 3))[::-1]
    sides = np.clip(np.round(sides), 1.0, 180.0)
    density = float(np.exp(rng.normal(np.log(230.0), 0.75)))  # kg per m3
    weight = max(0.05, round(float(np.prod(sides)) * 1e-6 * density, 2))
    weight = min(weight, 40.0)
    return {
        "zone": zone,
        "service": service,
        "weight_kg": weight,
        "length_cm": float(sides[0]),
        "width_cm": float(sides[1]),
        "height_cm": float(sides[2]),
        "residential": bool(rng.random() < 0.6),
        "remote": bool(rng.random() < 0.1),
        "declared_value": float(round(np.exp(rng.normal(np.log(60.0), 1.0)), 2)),
    }


def generate_split(seed: int, split_index: int, n: int) -> list[tuple[dict[str, Any], float]]:
    """The ``n`` parcels of one split and their prices."""
    rng = np.random.default_rng([seed, split_index])
    parcels = [_parcel(rng) for _ in range(n)]
    return [(parcel, tariff_price(parcel)) for parcel in parcels]
