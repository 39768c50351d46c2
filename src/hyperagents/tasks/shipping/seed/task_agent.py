"""Seed task agent of the ``shipping`` task: a first attempt at the carrier's tariff.

``solve(inputs)`` receives one parcel (``zone`` 1..6, ``service`` ``"economy"`` or
``"express"``, ``weight_kg``, ``length_cm``, ``width_cm``, ``height_cm``, ``residential``,
``remote``, ``declared_value``) and returns its price quote. The quote is::

    price = base_zone<z> + per_kg_zone<z> * ceil(weight_kg)
    price = price * express_factor            for express parcels
    price = price + residential_fee           for residential addresses
    price = price * (1 + remote_rate)         for remote areas
    quote = price * 1.08                      fuel surcharge

rounded to cents. ``PARAMS`` holds a first guess at every rate; ``PARAM_SPACE`` declares the
range of each (and the input field it acts on) for the meta agent that tunes them.
Standalone: standard library only, deterministic, reads ``PARAMS`` at call time.
"""

from __future__ import annotations

import math
from typing import Any

PARAMS = {
    "base_zone1": 5.0,
    "base_zone2": 5.0,
    "base_zone3": 5.0,
    "base_zone4": 5.0,
    "base_zone5": 5.0,
    "base_zone6": 5.0,
    "per_kg_zone1": 1.0,
    "per_kg_zone2": 1.0,
    "per_kg_zone3": 1.0,
    "per_kg_zone4": 1.0,
    "per_kg_zone5": 1.0,
    "per_kg_zone6": 1.0,
    "express_factor": 1.5,
    "residential_fee": 2.0,
    "remote_rate": 0.1,
}

PARAM_SPACE = {
    "base_zone1": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "base_zone2": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "base_zone3": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "base_zone4": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "base_zone5": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "base_zone6": {"type": "float", "low": 0.0, "high": 30.0, "feature": "zone"},
    "per_kg_zone1": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "per_kg_zone2": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "per_kg_zone3": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "per_kg_zone4": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "per_kg_zone5": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "per_kg_zone6": {"type": "float", "low": 0.0, "high": 5.0, "feature": "weight_kg"},
    "express_factor": {"type": "float", "low": 1.0, "high": 3.0, "feature": "service"},
    "residential_fee": {"type": "float", "low": 0.0, "high": 10.0, "feature": "residential"},
    "remote_rate": {"type": "float", "low": 0.0, "high": 0.5, "feature": "remote"},
}


def _number(inputs: dict[str, Any], key: str) -> float:
    value = inputs.get(key, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def solve(inputs: dict[str, Any]) -> float:
    """Return the price quote of one parcel."""
    p: dict[str, Any] = PARAMS
    zone = min(max(int(_number(inputs, "zone")), 1), 6)
    weight = math.ceil(max(_number(inputs, "weight_kg"), 0.0))
    price = float(p[f"base_zone{zone}"] + p[f"per_kg_zone{zone}"] * weight)
    if inputs.get("service") == "express":
        price *= p["express_factor"]
    if inputs.get("residential"):
        price += p["residential_fee"]
    if inputs.get("remote"):
        price *= 1.0 + p["remote_rate"]
    return round(price * 1.08, 2)
