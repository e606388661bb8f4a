"""T-Union validator core: pure Python that runs unchanged on MicroPython and CPython."""
