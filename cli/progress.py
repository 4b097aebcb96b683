"""Progress for a person: a spinner with the operation's status on a terminal, a line per
change of status otherwise; nothing with --only-show-errors or -o on a pipe."""

from __future__ import annotations

import itertools
import shutil
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
        self.width = 0  # of the spinner's line, to blank it when a shorter one replaces it

    def update(self, status: str, detail: str = "") -> None:
        """``detail`` changes at every poll (gate values, say): shown on a terminal only, so
        a log gets a line per change of ``status`` and no more."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        if self.tty:
            more = f" | {detail}" if detail else ""
            self._rewrite(f"{next(self.frames)} {self.title}: {status}{more} ({elapsed:.0f}s) ")
        elif status != self.last:
            sys.stderr.write(f"{self.title}: {status}\n")
        self.last = status

    def note(self, line: str) -> None:
        """A line that stays (an event as it happens), above the spinner."""
        if self.quiet:
            return
        if self.tty:
            self._rewrite("")
            sys.stderr.write("\r")
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
        self.width = 0

    def done(self, status: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        end = "\r" if self.tty else ""
        line = f"{self.title}: {status} ({elapsed:.1f}s)"
        sys.stderr.write(f"{end}{line.ljust(self.width)}" + " " * 10 + "\n")

    def _rewrite(self, line: str) -> None:
        # A line longer than the terminal wraps, and "\r" no longer reaches its start.
        line = line[: shutil.get_terminal_size().columns - 1]
        sys.stderr.write(f"\r{line.ljust(self.width)}")
        sys.stderr.flush()
        self.width = len(line)
