"""Cases that run on CPython (tests/test_mpcases.py) and under MicroPython (tests/test_micropython.py).

Each <name>_cases.py holds plain `def case_*():` functions that take no arguments and use plain `assert`.
"""
