"""Run a checkout script (`tools/<name>.py`) in this process, as `python tools/<name>.py ARGS` would."""
import runpy
import sys
from typing import Sequence

import pytest

from helpers.paths import REPO


def run_tool_script(name: str, args: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `tools/<name>` as __main__ with `args`; the script ends the process, so a success is SystemExit(0)."""
    monkeypatch.setattr(sys, 'argv', [name, *map(str, args)])
    with pytest.raises(SystemExit) as ended:
        runpy.run_path(str(REPO / 'tools' / name), run_name='__main__')
    assert ended.value.code in (None, 0), f'tools/{name} exited with {ended.value.code!r}'
