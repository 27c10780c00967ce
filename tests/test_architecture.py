"""The layering in STYLE.md, checked: core knows no app, apps don't import each other."""

import subprocess
import sys
from pathlib import Path

from core.settings import REPO_ROOT


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout
