"""Names that may become paths: no '..', no absolute paths, no backslashes or NULs."""


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
