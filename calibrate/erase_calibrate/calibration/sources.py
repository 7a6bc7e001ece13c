"""Old name, kept until erase-eval's branch is rewired: `tasks` is the one registry of item sources."""

from __future__ import annotations

from ..tasks import check_names, item_pool, known_names, require, score  # noqa: F401


def default_names(model: str, datasets: list[str] | None = None) -> list[str]:
    from .. import models, tasks

    return tasks.default_names(models.default_tasks(model), datasets)
