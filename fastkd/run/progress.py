"""Progress bars only where they can redraw: on a terminal.

A bar redraws its line with carriage returns; written to a log file or a CI console every refresh
becomes more text (a 60-epoch run left thousands of them). Off a terminal the bars are not drawn
and the loop's one line per epoch is the whole record. FASTKD_PROGRESS=bars draws them anyway,
FASTKD_PROGRESS=lines never does.
"""
from __future__ import annotations

import os
import sys


def bars_wanted(stream=None) -> bool:
    choice = os.environ.get("FASTKD_PROGRESS", "").lower()
    if choice in ("bars", "lines"):
        return choice == "bars"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(*, total, desc: str, enabled: bool = True, **options):
    """A tqdm bar, disabled (and writing nothing) unless ``enabled`` and stderr is a terminal."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not (enabled and bars_wanted()), **options)
