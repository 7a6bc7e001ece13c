"""Sample data installed with the calibrator as ``erase_calibrate.data_samples``.

Only ``demo-model/`` (the demo checkpoint behind ``--model demo``) goes into wheels;
``setup.py`` maps this folder to the package and ``pyproject.toml`` lists the files.
The benchmark parquet files and images stay in the checkout (tests and docs).
"""
