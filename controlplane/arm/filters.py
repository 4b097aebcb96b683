"""List filters ARM clients send as query parameters."""


def filter_tags(queryset, spec: str | None):
    """``tags=key1,key2=value`` keeps resources that have every key (with that value)."""
    for item in filter(None, (spec or "").split(",")):
        key, sep, value = item.partition("=")
        if sep:
            queryset = queryset.filter(tags__contains={key.strip(): value.strip()})
        else:
            queryset = queryset.filter(tags__has_key=key.strip())
    return queryset
