"""The sequence vocabulary beside SEQUENCES: aliases, and names to flags and back."""

from __future__ import annotations

import pytest

from gliomics.constants import SEQUENCES, canonical_sequence, sequence_flags, sequences_of


@pytest.mark.parametrize(("alias", "name"), [("T1ce", "t1c"), ("t1-gd", "t1c"), ("FLAIR", "t2f"), ("T2 FLAIR", "t2f"),
                                             ("T1w", "t1n"), ("t2", "t2w"), ("t2w", "t2w")])
def test_aliases_map_to_brats_2024_names(alias, name):
    assert canonical_sequence(alias) == name


def test_an_unknown_name_has_no_canonical_name():
    assert canonical_sequence("dwi") is None


def test_flags_follow_the_order_of_sequences_and_come_back():
    assert sequence_flags(["t2f", "t1c"]) == (False, True, False, True)
    assert sequences_of(sequence_flags(["t2f", "t1c"])) == ["t1c", "t2f"]
    assert sequences_of([1, 1, 1, 1]) == list(SEQUENCES)
    with pytest.raises(ValueError):
        sequences_of([True, False])  # one flag per sequence
