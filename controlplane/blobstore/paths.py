"""Blob addresses: account host names, and blob names that may become paths (no '..', no
absolute paths, no backslashes or NULs)."""

import re

# Host-style addresses: {account}.blob.{domain}.
HOST_STYLE = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.blob\.", re.IGNORECASE)


class UnsafePath(ValueError):
    pass


def check_blob_name(name: str) -> str:
    """Return ``name`` if it is a safe relative path, else raise UnsafePath."""
    if not name or len(name) > 1024:
        raise UnsafePath("The blob name must have 1 to 1024 characters.")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise UnsafePath(f"The blob name '{name}' is absolute or has a backslash or NUL.")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise UnsafePath(f"The blob name '{name}' has an empty, '.' or '..' segment.")
    return name
