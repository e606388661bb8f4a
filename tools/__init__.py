"""Developer helpers run from the repository root: `python -m tools.mprun`, `python -m tools.demo`, ..."""
