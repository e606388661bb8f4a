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
    """Runs the cases modules this session selected, all at once (one Node process each), on first use."""

    def __init__(self, stems):
        self._stems = stems
        self._by_module = {}

    def get(self, module):
        if module not in self._by_module:
            paths = [p for p in case_modules() if p.stem in self._stems or p.stem == module]
            paths = [p for p in paths if p.stem not in self._by_module]
            workers = max(1, min(len(paths), os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for p, r in zip(paths, pool.map(mprun.run_cases, paths)):
                    self._by_module[p.stem] = r
        return self._by_module[module]


@pytest.fixture(scope="session")
def mp_results(request):
    mprun.node_command()  # fail here, once, with the install hint
    stems = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "module" in params:
            stems.add(params["module"])
        elif "path" in params and hasattr(params["path"], "stem"):
            stems.add(params["path"].stem)
    return _Results(stems)


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
    # Catches what the per-case items cannot (a crash of the VM, a case the file scan did not see, an import
    # failure) without reporting a failing case a second time.
    results, proc = mp_results.get(path.stem)
    named = set(case_names(path))
    assert proc.returncode in (0, 1), "runner fault:\n" + _explain(results, proc)
    assert named <= set(results), "cases that did not run:\n" + _explain(results, proc)
    unexpected = [n for n, r in results.items() if not r["ok"] and n not in named]
    assert not unexpected, _explain(results, proc)
    assert proc.returncode == 0 or any(not results[n]["ok"] for n in named), _explain(results, proc)


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
