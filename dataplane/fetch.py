"""``python -m dataplane.fetch URL --to DIR``: copy a blob directory (a Blob API URL with a
SAS) into DIR, keeping its relative paths. The Kubernetes init container runs it to bring a
deployment's model and code from Weir's blob store; standard library only, so any image with
Weir's inference server can run it.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from urllib.request import urlopen


def fetch(url: str, target: Path, context: ssl.SSLContext | None = None) -> list[str]:
    """Download every blob under the directory ``url`` names; the relative paths written."""
    parts = urlsplit(url)
    account, container, *rest = parts.path.lstrip("/").split("/")
    prefix = "/".join(rest).strip("/") + "/"
    base = f"/{account}/{container}"
    written, marker = [], ""
    while True:
        query = f"restype=container&comp=list&prefix={quote(prefix)}&{parts.query}"
        if marker:
            query += f"&marker={quote(marker)}"
        listing = urlunsplit((parts.scheme, parts.netloc, base, query, ""))
        with urlopen(listing, context=context, timeout=60) as response:
            document = ET.fromstring(response.read())
        for name in (node.text for node in document.iter("Name") if node.text):
            relative = name[len(prefix) :]
            if not relative or ".." in Path(relative).parts:
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob = urlunsplit(
                (parts.scheme, parts.netloc, f"{base}/{quote(name)}", parts.query, "")
            )
            with urlopen(blob, context=context, timeout=300) as response:
                destination.write_bytes(response.read())
            written.append(relative)
        marker = (document.findtext("NextMarker") or "").strip()
        if not marker:
            break
    if not written:  # not a directory: the URL names one blob
        name = prefix.rstrip("/").rsplit("/", 1)[-1]
        with urlopen(url, context=context, timeout=300) as response:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(response.read())
        written.append(name)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dataplane.fetch", description=__doc__)
    parser.add_argument("url", help="a blob directory URL with its SAS")
    parser.add_argument("--to", required=True, help="the directory to fill")
    parser.add_argument("--ca-bundle", help="certificates to trust for the blob store")
    args = parser.parse_args(argv)
    context = ssl.create_default_context(cafile=args.ca_bundle) if args.ca_bundle else None
    written = fetch(args.url, Path(args.to), context)
    print(f"fetched {len(written)} file(s) into {args.to}", file=sys.stderr)


if __name__ == "__main__":
    main()
