"""Old name, kept until erase-eval's branch is rewired: encoding and answering live in tasks/answering.py."""

from .tasks.answering import *  # noqa: F401,F403
from .tasks.answering import Answer, collate, decode, encode, greedy_answer, greedy_answers, item_inputs, reproduce_batch, reproduces, with_answer  # noqa: F401
