"""ISO 8601 durations as ARM sends them (``PT10S``, ``PT0.5S``, ``P1DT2H``)."""

import re

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_seconds(value: str) -> float:
    match = _DURATION.match(value or "")
    if not match or value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"'{value}' is not an ISO 8601 duration such as PT10S")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
