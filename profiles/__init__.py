"""The shipped profiles, installed as package data of the runtime: ``erase.profiles``.

This folder stays at the top of the repository; ``setup.py`` maps it to the
``erase.profiles`` package so that wheels and editable installs carry it, and
``erase.registry`` finds it with ``importlib.resources``.
"""
