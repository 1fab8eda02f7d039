"""Progress bars that show on a terminal only: in a log file or a pipe their redraws are noise."""
from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **options) -> tqdm:
    # disable=None is tqdm's "off unless the output is a terminal".
    return tqdm(iterable, disable=None if enabled else True, **options)
