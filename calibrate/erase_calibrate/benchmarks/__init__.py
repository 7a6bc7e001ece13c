"""Old name, kept until erase-eval's branch is rewired: the benchmarks are tasks/benchmarks/ and tasks/sources/."""

from ..tasks.benchmarks import *  # noqa: F401,F403
from ..tasks.benchmarks import BENCHMARKS, CALIBRATION_BENCHMARKS, EVALUATION_BENCHMARKS, get_benchmark, load_items, score  # noqa: F401
