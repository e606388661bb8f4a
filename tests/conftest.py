"""Shared pytest setup: puts the repository root on sys.path so tests can import `tools.*` (mprun, mpybuild).

pyproject.toml already puts firmware/ and tests/ on sys.path, so `import tunion.x` and `import sim.card` work.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # ROOT holds no `tunion`, `sim` or `mpcases`, so nothing is shadowed
