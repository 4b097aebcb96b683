"""How the portal writes numbers: rates, shares and milliseconds, with a dash for none."""

from django import template

register = template.Library()

NONE = "–"


@register.filter
def rate(value) -> str:
    if value is None:
        return NONE
    return f"{value:.2f}/s" if value < 10 else f"{value:.0f}/s"


@register.filter
def percent(value) -> str:
    if value is None:
        return NONE
    return f"{value * 100:.1f}%" if value < 0.1 else f"{value * 100:.0f}%"


@register.filter
def ms(value) -> str:
    if value is None:
        return NONE
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


@register.filter
def dictget(mapping, key):
    """``mapping[key]``, 0 when it has none (a deployment without traffic)."""
    return (mapping or {}).get(key, 0)
