"""What a trial cannot change: an item's result at a given number of kept tokens, shared by all trials.

With Stage 1 only, a trial changes an item's input in one way: how many of its
vision tokens it keeps (the top k by patch entropy, k = floor(M * keep ratio of
the item's level)). The pruned model's greedy answer, and so whether it is
correct, is a function of (item, k). With Stage 2 (`--stage2-keep-ratio`) the
Stage 2 layer, chosen by the level, joins the key. So each (item, k, layer)
is evaluated once per study and remembered.

The memo lives in the study's storage, where every worker reads it: each trial
records what it evaluated as user attributes (``erase.memo.N``, one per batch:
a list of ``[item, k, layer or -1, correct]``) through `Trial.set_user_attr`, and
a worker reads every trial's entries (any state: a killed trial's results are as
good as a finished one's) when it starts a trial. Items are numbered by their
position in the study's calibration set, which the study pins (record.save_items).
"""

from __future__ import annotations

from typing import Any, Iterable

PREFIX = "erase.memo."

Key = tuple[int, int, int]  # item, kept tokens, Stage 2 layer (-1: none)


class Memo:
    def __init__(self) -> None:
        self.known: dict[Key, bool] = {}
        self._by_item: dict[int, list[tuple[int, int, bool]]] = {}
        self.hits = 0
        self.lookups = 0
        self.conflicts = 0  # a result computed twice that came out differently (different hardware)

    def get(self, key: Key) -> bool | None:
        self.lookups += 1
        got = self.known.get(key)
        if got is not None:
            self.hits += 1
        return got

    def peek(self, key: Key) -> bool | None:
        return self.known.get(key)

    def add(self, entries: Iterable[tuple[int, int, int, bool]]) -> None:
        for i, k, layer, ok in entries:
            key = (int(i), int(k), int(layer))
            if key in self.known:
                self.conflicts += int(self.known[key] != bool(ok))
                continue
            self.known[key] = bool(ok)
            self._by_item.setdefault(key[0], []).append((key[1], key[2], bool(ok)))

    def item_entries(self, item: int) -> list[tuple[int, int, bool]]:
        """(kept tokens, layer, correct) of every result known for one item."""
        return self._by_item.get(item, [])

    # ---------------------------------------------------------------- the study's copy
    def refresh(self, study: Any) -> None:
        """Read every trial's memo entries from the study (other workers' included)."""
        for t in study.get_trials(deepcopy=False):
            for key, value in t.user_attrs.items():
                if key.startswith(PREFIX) and isinstance(value, list):
                    self.add(tuple(e) for e in value if isinstance(e, list) and len(e) == 4)

    @staticmethod
    def record(trial: Any, batch: int, entries: list[tuple[int, int, int, bool]]) -> None:
        """Store one batch's results on the trial (any worker reads them from the storage)."""
        trial.set_user_attr(f"{PREFIX}{batch}", [[int(i), int(k), int(layer), bool(ok)] for i, k, layer, ok in entries])
