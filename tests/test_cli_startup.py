"""`audit --help` starts fast: the CLI modules import no torch, faiss, scipy, PIL or scikit-learn
(each costs 0.3-4 s); those load when a command runs. Wall time is measured in
benchmarks (docs/benchmarks.md, "Start-up"), not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("torch", "faiss", "scipy", "PIL", "sklearn")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; import json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library():
    assert _loaded_after("import audit.cli") == []


def test_help_lists_the_registries_without_loading_them():
    code = ("from typer.testing import CliRunner; from audit.cli import app; r = CliRunner(); "
            "h = r.invoke(app, ['train', '--help']).output + r.invoke(app, ['dynamics', '--help']).output; "
            "assert 'fixmatch' in h and 'pimodel' in h and 'chain' in h and 'influence' in h, h")
    assert _loaded_after(code) == []


def test_a_lazy_registry_entry_is_the_class_itself():
    from audit.ssl.algorithms import ALGORITHMS
    from audit.ssl.algorithms.fixmatch import FixMatch

    assert ALGORITHMS.get("fixmatch") is FixMatch and "fixmatch" in ALGORITHMS
    for name in ALGORITHMS:  # every lazy target exists, under its file's name
        cls = ALGORITHMS.get(name)
        assert cls.__module__ == f"audit.ssl.algorithms.{name}"


def test_redteam_help_lists_every_attack_without_torch():
    """`redteam --help` imports the attack registry (every attack's module and config); the gan
    and transfer attacks import torch only where they run."""
    code = ("from typer.testing import CliRunner; from redteam.cli import app; "
            "from redteam.attacks import ATTACKS; h = CliRunner().invoke(app, ['inject', '--help']).output; "
            "assert 'gan' in list(ATTACKS) and 'transfer' in list(ATTACKS), list(ATTACKS)")
    assert "torch" not in _loaded_after(code)


def test_the_cli_sets_openblas_idle_timeout_before_numpy_loads_and_keeps_a_users_value():
    """OPENBLAS_THREAD_TIMEOUT is read once, when numpy loads OpenBLAS: it must be in the
    environment by then, and a value the user set must win."""
    code = ("import os, sys\n"
            "class Watch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy':\n"
            "            print('at numpy', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
            "        return None\n"
            "sys.meta_path.insert(0, Watch())\n"
            "import audit.cli\n"
            "print('after', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.splitlines()[0] == "at numpy 4" and out.splitlines()[-1] == "after 4"
    env["OPENBLAS_THREAD_TIMEOUT"] = "9"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.splitlines()[0] == "at numpy 9" and out.splitlines()[-1] == "after 9"
