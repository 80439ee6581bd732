import numpy as np

from harness.metrics import accuracy, confusion_matrix, macro_f1


def test_accuracy():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


def test_macro_f1_by_hand():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 0 -> 0
    assert np.isclose(macro_f1(y_true, y_pred, 3), (0.5 + 0.8 + 0) / 3)


def test_classes_never_seen_nor_predicted_are_left_out():
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 5) == 1.0


def test_confusion_matrix():
    counts = confusion_matrix(np.array([0, 1, 1]), np.array([1, 1, 0]), 2)
    assert counts.tolist() == [[0, 1], [1, 1]]
