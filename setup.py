"""The package layout, which pyproject.toml cannot express on its own.

Code lives in runtime/ (``erase``) and calibrate/ (``erase_calibrate``); the data the installed
commands need stays at the top of the repository and installs as subpackages, read with
``importlib.resources``: profiles/ as ``erase.profiles``, data_samples/ as
``erase_calibrate.data_samples`` (its files are listed under package-data in pyproject.toml).
Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

CODE = {"erase": "runtime/erase", "erase_calibrate": "calibrate/erase_calibrate"}
DATA = {"erase.profiles": "profiles", "erase_calibrate.data_samples": "data_samples"}

setup(
    packages=[*find_packages("runtime"), *find_packages("calibrate"), *DATA],
    package_dir={**CODE, **DATA},
)
