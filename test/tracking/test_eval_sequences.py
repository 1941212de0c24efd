"""The docs tools' generated evaluation splits: made once, extended without changing."""

import pathlib

import numpy as np
from tools.make_pretraining_docs import sequences_of


def test_a_longer_request_extends_the_split_and_keeps_its_sequences(tmp_path: pathlib.Path):
    first = sequences_of(tmp_path, 'val', 3, 1, 4, None)
    frame = (tmp_path / 'val' / first[0].name / '00000003.jpg').read_bytes()
    assert len(first) == 1
    extended = sequences_of(tmp_path, 'val', 3, 2, 4, None)
    assert [s.name for s in extended][:1] == [first[0].name] and len(extended) == 2
    assert (tmp_path / 'val' / first[0].name / '00000003.jpg').read_bytes() == frame
    np.testing.assert_array_equal(extended[0].anno, first[0].anno)
    # A shorter request reads the first ones back without generating anything.
    listed = (tmp_path / 'val' / 'list.txt').stat().st_mtime_ns
    assert [s.name for s in sequences_of(tmp_path, 'val', 3, 1, 4, None)] == [first[0].name]
    assert (tmp_path / 'val' / 'list.txt').stat().st_mtime_ns == listed
