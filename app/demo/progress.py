"""Everything the demo prints while it works: numbered, timed steps and progress bars.

Services never print; the demo reports their progress through the callbacks they offer
(e.g. the worker's ``progress(done, total)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm


class StepLog:
    """Numbered steps with timings on a text stream; the heavy steps add their own tqdm bars."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.index = 0
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[None]:
        self.index += 1
        self.say(f"[{self.index}/{self.total}] {title}")
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.timings[name] = round(seconds, 2)
        self.say(f"      done in {seconds:.1f} s")

    def reuse(self, name: str, title: str) -> None:
        self.index += 1
        self.timings[name] = 0.0
        self.reused.append(name)
        self.say(f"[{self.index}/{self.total}] {title}: reused from an earlier run")


@contextmanager
def count_bar(desc: str, unit: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar driven by ``report(done, total)`` callbacks (the worker's progress hook)."""
    with tqdm(desc=f"      {desc}", unit=unit, disable=not enabled, leave=False) as bar:

        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        yield report
