"""The embedded demo's tools: training the small Qwen2.5-VL-architecture model and measuring it.

- `erase_calibrate.demo.train`: ``python -m erase_calibrate.demo.train`` trains it from scratch;
- `erase_calibrate.demo.evaluate`: ``python -m erase_calibrate.demo.evaluate`` measures its quality bars.

The model and its tasks are registrations like any other: the model source `demo`
(`erase_calibrate.models.demo`) and the item source `demo` (`erase_calibrate.tasks.sources.demo`).
See docs/demo.md.
"""
