"""Progress lines within an epoch: when they are written and what they say."""
from harness.outputs.progress import EpochProgress, progress_line


def test_a_progress_line_says_where_the_epoch_is_and_how_long_is_left():
    line = progress_line(2, 6, batch=120, batches=400, images=1920, elapsed=60.0)
    assert line == "epoch 2/6: batch 120/400 (30%), 32 img/s, 2m20s left in the epoch"
    assert "\r" not in line


def test_lines_come_at_most_every_interval_and_never_for_the_last_batch():
    now, lines = [0.0], []
    progress = EpochProgress(1, 3, batches=10, interval=30, clock=lambda: now[0], emit=lines.append)
    for batch in range(1, 11):
        now[0] = batch * 10.0  # a batch every 10 s
        progress(batch, batch * 8)
    # at 30, 60 and 90 s; batch 10 ends the epoch, where the epoch's own line follows
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == ["batch 3/10", "batch 6/10",
                                                                         "batch 9/10"]
