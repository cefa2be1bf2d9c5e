"""Walking a dataset folder with symlinks resolved once.

Datasets are often assembled from symlinks (a split folder linking to shared frames, a link back to a
parent). `os.walk(followlinks=True)` enters a linked folder every time it is reached: a link to an ancestor
repeats the tree until the path is too long (each frame listed dozens of times, possibly in every split),
and two such links make the walk exponential (it never finishes). Here every real folder is entered once
and every real file is listed once, under the first path that reaches it in sorted order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


def walk_once(folder: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(folder, followlinks=True)` in sorted order, entering each real folder only once (a linked
    folder seen before, e.g. an ancestor, is skipped); hidden entries (`.name`) are left out."""
    root = os.stat(folder)
    seen: set[tuple[int, int]] = {(root.st_dev, root.st_ino)}  # a folder is marked when its parent lists it
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            try:
                child = os.stat(os.path.join(dirpath, name))
            except OSError:  # a dangling link
                continue
            if (child.st_dev, child.st_ino) in seen:
                skipped.append(os.path.join(dirpath, name))
                continue
            seen.add((child.st_dev, child.st_ino))
            keep.append(name)
        dirnames[:] = keep
        yield dirpath, keep, sorted(f for f in filenames if not f.startswith("."))
    if skipped:
        log.warning("%s: skipped %d linked folder(s) already listed (e.g. %s)", folder, len(skipped), skipped[0])


def unique_files(folder: str | os.PathLike[str], keep: Callable[[str], bool] = lambda name: True) -> list[str]:
    """Paths (as reached from `folder`) of the files under it whose name passes `keep`, each real file once
    (the sorted-first path of several that link to one file), sorted."""
    found: dict[str, str] = {}
    duplicates = 0
    for dirpath, _, filenames in walk_once(folder):
        for name in filenames:
            if not keep(name):
                continue
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            if real in found:
                duplicates += 1
                found[real] = min(found[real], path)
            else:
                found[real] = path
    if duplicates:
        log.warning("%s: %d file(s) reached through more than one path (symlinks) are listed once", folder,
                    duplicates)
    return sorted(found.values())
