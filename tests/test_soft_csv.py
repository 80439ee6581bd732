import numpy as np
import pytest

from harness.fit.dump_rule import should_dump
from harness.outputs.soft_csv import soft_csv_names, soft_frame


@pytest.mark.parametrize("acc, loss, last, threshold, expected", [
    (0.95, 0.30, None, 0.9, True),   # first good epoch
    (0.89, 0.30, None, 0.9, False),  # below the threshold
    (0.90, 0.30, None, 0.9, True),   # the threshold itself passes
    (0.95, 0.25, 0.30, 0.9, True),   # loss fell since the last dump
    (0.95, 0.30, 0.30, 0.9, False),  # loss did not fall
    (0.99, 0.40, 0.30, 0.9, False),  # better accuracy but a higher loss
    (0.10, 2.00, None, 0.0, True),   # threshold 0: every epoch whose loss falls
])
def test_dump_rule(acc, loss, last, threshold, expected):
    assert should_dump(acc, loss, last, threshold) is expected


def test_file_names_follow_the_original_contest_code():
    assert soft_csv_names(3, 0.93125, 0.21) == ("submission3_0.9313_0.2100_soft.csv", "valid3_0.9313_0.2100_soft.csv")


def test_soft_frame_columns():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    frame = soft_frame(["a.jpg", "b.jpg"], probs, labels=np.array([1, 0]))
    assert list(frame.columns) == ["ImageID", "label", "0", "1"]
    assert frame["1"].tolist() == [0.8, 0.4]
    assert list(soft_frame(["a.jpg", "b.jpg"], probs).columns) == ["ImageID", "0", "1"]
