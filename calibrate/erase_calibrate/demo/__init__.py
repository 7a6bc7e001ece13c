"""The embedded demo: a small trained Qwen2.5-VL-architecture model and its synthetic tasks.

- `erase_calibrate.demo.tasks`: the seeded task generator and its scorer;
- `erase_calibrate.demo.model`: the model's config, `demo_model_path()`, `load_demo()`;
- `erase_calibrate.demo.train`: ``python -m erase_calibrate.demo.train`` trains it from scratch;
- `erase_calibrate.demo.evaluate`: ``python -m erase_calibrate.demo.evaluate`` measures its quality bars.

See docs/demo.md.
"""
