"""Every case_* in tests/mpcases/*_cases.py, run under the real MicroPython interpreter (WebAssembly, via Node).

One Node process per cases module (all modules started together on first use, results cached for the session);
one pytest item per case. Also checks the bridge itself: it must fail loudly, since the package's own CLI exits 0.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tools import mprun
from tools.mprun import case_modules, case_names

pytestmark = pytest.mark.micropython


class _Results:
    def __init__(self):
        self._by_module = None

    def _run_all(self):
        paths = case_modules()
        workers = max(1, min(len(paths), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(lambda p: mprun.run_cases(p), paths))
        self._by_module = {p.stem: r for p, r in zip(paths, done)}

    def get(self, module):
        if self._by_module is None:
            self._run_all()
        return self._by_module[module]


@pytest.fixture(scope="session")
def mp_results():
    mprun.node_command()  # fail here, once, with the install hint
    return _Results()


def _explain(results, proc):
    return "\n".join(
        ["%s: %s" % (n, r["error"]) for n, r in results.items() if not r["ok"]]
        + ["--- runner stdout ---", proc.stdout[-4000:], "--- runner stderr ---", proc.stderr[-4000:]]
    )


CASES = [pytest.param(p.stem, n, id="%s::%s" % (p.stem, n)) for p in case_modules() for n in case_names(p)]


@pytest.mark.parametrize("module,name", CASES)
def test_case_under_micropython(mp_results, module, name):
    results, proc = mp_results.get(module)
    if "<import>" in results:
        pytest.fail("mpcases.%s does not import under MicroPython:\n%s" % (module, results["<import>"]["error"]))
    assert name in results, "case did not run under MicroPython:\n" + _explain(results, proc)
    r = results[name]
    assert r["ok"], "%s.%s failed under MicroPython:\n%s" % (module, name, r["error"])


@pytest.mark.parametrize("path", case_modules(), ids=lambda p: p.stem)
def test_module_runs_clean_under_micropython(mp_results, path):
    # Catches what per-case items cannot: a crash of the VM, or a case the file scan did not see.
    results, proc = mp_results.get(path.stem)
    assert proc.returncode == 0, _explain(results, proc)


# ---- the bridge itself ---------------------------------------------------------------------------------------

def test_runs_micropython_not_cpython():
    out = mprun.run_code("import sys; print(sys.implementation.name)")
    assert out.strip() == "micropython"


def test_exception_exits_nonzero_with_traceback():
    proc = mprun.run_code("import tunion.compat\nraise ValueError('boom')", check=False)
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr


def test_missing_module_is_an_error():
    proc = mprun.run_code("import dataclasses", check=False)
    assert proc.returncode == 1
    assert "ImportError" in proc.stderr


def test_script_gets_argv_and_exit_status(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint(__name__, sys.argv[1:])\nsys.exit(int(sys.argv[1]))\n")
    assert mprun.run_script(script, ["0"]).strip() == "__main__ ['0']"
    proc = mprun.run_script(script, ["3"], check=False)
    assert proc.returncode == 3 and "__main__ ['3']" in proc.stdout
    with pytest.raises(mprun.MicroPythonError):
        mprun.run_script(script, ["4"])


def test_failing_case_is_reported_per_case(tmp_path):
    mod = tmp_path / "probe_cases.py"
    mod.write_text(
        "def case_good():\n    assert 1 + 1 == 2\n"
        "def case_bad():\n    assert [1, 2][5]\n"
    )
    results, proc = mprun.run_cases(mod)
    assert proc.returncode == 1
    assert results["case_good"]["ok"] is True
    assert results["case_bad"]["ok"] is False and "IndexError" in results["case_bad"]["error"]


def test_vm_sees_firmware_and_tests():
    out = mprun.run_code("import tunion.compat, sim, mpcases, sys; print(sys.path[:2])")
    assert out.strip() == "['/mp/tests', '/mp/firmware']"
