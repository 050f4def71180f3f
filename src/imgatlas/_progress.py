"""Progress bars: one place decides how they look (rate and ETA) and where they go."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int, desc: str, unit: str, enable: bool) -> tqdm:
    return tqdm(
        total=total, desc=desc, unit=unit, disable=not enable, file=sys.stderr,
        dynamic_ncols=True, smoothing=0.1, mininterval=0.5,
    )
