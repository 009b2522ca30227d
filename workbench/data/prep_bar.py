"""One progress bar for a trainer's data preparation.

TRL prepares each split in several `datasets.map` passes (tokenise, build labels, truncate,
drop fully masked rows), each with its own bar: four bars per split in the middle of a
notebook. `one_bar()` turns datasets' bars off while a trainer is built and shows one bar
over the splits instead."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_bar(splits: int, desc: str = "preparing data (tokenise, labels, truncate)", show: bool = True):
    import datasets
    from tqdm.auto import tqdm

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    bar = tqdm(total=max(splits, 1), desc=desc, unit="split", disable=not show)
    try:
        yield bar
        bar.update(bar.total - bar.n)
    finally:
        bar.close()
        if was_on:
            datasets.enable_progress_bars()
