"""Kubernetes resource quantities as deployments send them (``"2"``, ``"1500m"``, ``"512Mi"``,
``"1.5G"``, ``"1e3"``), read as Kubernetes reads them: the serializers check them at PUT and
the backends turn them into limits with the same parser."""

from __future__ import annotations

import re
from decimal import Decimal

# k8s.io/apimachinery's <quantity> ::= <number><suffix>, where a suffix is binary (Ki .. Ei),
# decimal (n u m "" k M G T P E) or an exponent (e3, E-2). No sign: a request or a limit is
# never negative.
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[eE][+-]?[0-9]{1,3}|[numkMGTPE])?$"
)
_MULTIPLIERS = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{f"{prefix}i": Decimal(1024**power) for power, prefix in enumerate("KMGTPE", start=1)},
}
# Kubernetes keeps a quantity in a signed 64-bit integer.
MAX_QUANTITY = Decimal(2**63 - 1)


def parse_quantity(value: str) -> Decimal:
    """The amount ``value`` names, in base units (cores, bytes, devices); ValueError when it
    is not a Kubernetes quantity or is larger than Kubernetes holds."""
    match = _QUANTITY.match(value if isinstance(value, str) else "")
    if not match:
        raise ValueError(f"'{value}' is not a Kubernetes quantity such as 2, 500m, 512Mi or 1.5G")
    suffix = match["suffix"]
    if suffix and suffix[0] in "eE" and len(suffix) > 1:
        multiplier = Decimal(10) ** int(suffix[1:])
    else:
        multiplier = _MULTIPLIERS[suffix]
    amount = Decimal(match["number"]) * multiplier
    if amount > MAX_QUANTITY:
        raise ValueError(f"'{value}' is larger than a Kubernetes quantity can be")
    return amount
