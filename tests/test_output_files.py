"""Output files and folders: complete or absent, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat

import pytest

from hierlin_stan.reports.tables import write_table
from hierlin_stan.utils.output import OutputExistsError, staged_output
from hierlin_stan.utils.files import write_text_atomic


@pytest.fixture
def umask_027(monkeypatch):
    from hierlin_stan.utils import files

    monkeypatch.setattr(files, "_UMASK", 0o027)  # the umask is read once, at import


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_staged_folder_and_files_follow_the_umask(tmp_path, umask_027):
    import pandas as pd

    out = tmp_path / "report"
    with staged_output(out) as folder:
        write_table(pd.DataFrame({"a": [1.0]}), folder / "t", "a table")
        write_text_atomic(folder / "note.txt", "hello\n")
    assert _mode(out) == 0o750  # not mkdtemp's private 0700
    assert {p.name: _mode(p) for p in out.iterdir()} == {"t.csv": 0o640, "t.md": 0o640, "note.txt": 0o640}


def test_failed_block_leaves_no_folder_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(RuntimeError):
        with staged_output(out) as folder:
            write_text_atomic(folder / "half.txt", "half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with staged_output(out) as folder:
        write_text_atomic(folder / "done.txt", "done")
    with pytest.raises(RuntimeError):
        with staged_output(out, force=True) as folder:
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert (out / "done.txt").read_text() == "done"
    with pytest.raises(OutputExistsError, match="pass --force"):
        with staged_output(out):
            pass
