"""The calibrator's search: the Optuna study over thresholds and keep ratios, and what it writes.

It takes its model from `models` and its items from `tasks`; nothing here loads either itself.
"""
