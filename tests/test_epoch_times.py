"""A run folder's epoch times: the record of a run trained in pieces sums every kept epoch, and only those."""
import pytest

from timm_ignore.runs import add_epoch_time, run_times


def test_record_times_sum_every_epoch(tmp_path):
    add_epoch_time(tmp_path, 0, wall_s=12.0, train_s=10.0, images=1000)
    add_epoch_time(tmp_path, 1, wall_s=13.0, train_s=10.0, images=1000)
    assert run_times(tmp_path, 2) == dict(wall_time_s=25.0, train_time_s=20.0, train_images_per_s=100.0)


def test_a_redone_epoch_replaces_its_times_and_drops_later_ones(tmp_path):
    for epoch in range(3):
        add_epoch_time(tmp_path, epoch, wall_s=10.0, train_s=8.0, images=800)
    add_epoch_time(tmp_path, 1, wall_s=30.0, train_s=20.0, images=800)  # resumed from epoch 0's checkpoint
    assert run_times(tmp_path, 3) is None  # epoch 2 is not kept: it is trained again
    assert run_times(tmp_path, 2) == dict(wall_time_s=40.0, train_time_s=28.0, train_images_per_s=57.1)


@pytest.mark.parametrize('kept, epochs', [([], 1), ([1], 2), ([0, 1], 3), ([0], 0)])
def test_no_times_unless_every_finished_epoch_has_them(tmp_path, kept, epochs):
    """A piece trained by a version that kept no times (epoch 0 missing) gives no sum, not a smaller one."""
    for epoch in kept:  # [1]: as a resume from a folder without the file leaves it
        add_epoch_time(tmp_path, epoch, wall_s=1.0, train_s=1.0, images=10)
    assert run_times(tmp_path, epochs) is None
