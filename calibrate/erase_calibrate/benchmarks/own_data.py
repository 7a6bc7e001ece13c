"""Old name, kept until erase-eval's branch is rewired: a user's datasets are tasks/own_data.py."""

from ..tasks.own_data import *  # noqa: F401,F403
from ..tasks.own_data import SCORERS, OwnDataset, describe, is_own, load_items, score  # noqa: F401
