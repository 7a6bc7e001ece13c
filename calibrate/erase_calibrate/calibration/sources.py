"""Old name, kept until erase-eval's branch is rewired: `tasks` is the one registry of item sources."""

from ..tasks import check_names, item_pool, known_names, require, score  # noqa: F401
