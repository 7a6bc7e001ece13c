"""erase-eval: accuracy of ERASE and the other pruning methods at several pruning levels.

`config.build` checks the options, `run.evaluate` answers (cached per item) and scores,
`report` renders the paper's Table 1 layout, JSON and a plot. Models and items come
only through `sources`.
"""
