"""Every case_* in tests/mpcases/*_cases.py, run on CPython: one pytest item per case.

The same functions run under MicroPython in test_micropython.py. Each runs in a fresh temporary working directory.
"""
import importlib

import pytest

from tools.mprun import case_modules, case_names


CASES = [pytest.param(p.stem, n, id="%s::%s" % (p.stem, n)) for p in case_modules() for n in case_names(p)]


@pytest.mark.parametrize("module,name", CASES)
def test_case_on_cpython(module, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module("mpcases." + module)
    getattr(mod, name)()


@pytest.mark.parametrize("path", case_modules(), ids=lambda p: p.stem)
def test_cases_file_and_module_agree(path):
    # A case made at run time (or nested, or shadowed) would be missed by the per-case items above.
    mod = importlib.import_module("mpcases." + path.stem)
    defined = sorted(n for n in dir(mod) if n.startswith("case_") and callable(getattr(mod, n)))
    assert defined == sorted(case_names(path)), "case_* functions must be plain top-level `def case_...():`"
