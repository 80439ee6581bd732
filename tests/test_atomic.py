import os
import stat

import pandas as pd
import pytest

from harness.atomic import atomic_open, write_csv, write_jsonl


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file_whole(tmp_path):
    target = tmp_path / "out.csv"
    write_csv(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("garbage")
            raise RuntimeError
    assert target.read_text() == "a\n1\n"


def test_outputs_get_the_usual_permissions(tmp_path):
    write_jsonl([{"epoch": 1}], tmp_path / "metrics.jsonl")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "metrics.jsonl").st_mode) == 0o666 & ~mask
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
