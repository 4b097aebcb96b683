"""Progress for a person: a spinner with the operation's status on a terminal, a line per
change of status otherwise; nothing with --only-show-errors or -o on a pipe."""

from __future__ import annotations

import itertools
import sys
import time

FRAMES = "|/-\\"


class Progress:
    def __init__(self, title: str, quiet: bool = False):
        self.title = title
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.frames = itertools.cycle(FRAMES)
        self.last = None
        self.started = time.monotonic()

    def update(self, status: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        if self.tty:
            sys.stderr.write(f"\r{next(self.frames)} {self.title}: {status} ({elapsed:.0f}s) ")
            sys.stderr.flush()
        elif status != self.last:
            sys.stderr.write(f"{self.title}: {status}\n")
        self.last = status

    def done(self, status: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        end = "\r" if self.tty else ""
        sys.stderr.write(f"{end}{self.title}: {status} ({elapsed:.1f}s)" + " " * 10 + "\n")
