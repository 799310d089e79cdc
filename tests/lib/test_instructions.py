"""The generated instruction data: deterministic, thousands of examples, every answer verified from the
raw data, a held-out split that shares no instruction with training, clear errors."""

from __future__ import annotations

import collections

import pytest
from llmcourse.toolbox.instructions import (
    FAMILIES,
    Instruction,
    generate_instructions,
    play_titles,
    split_instructions,
    verify,
)


@pytest.fixture(scope="module")
def data():
    return generate_instructions(6000, seed=0)


def test_thousands_of_distinct_examples_of_every_family(data):
    counts = collections.Counter(ex.family for ex in data)
    assert set(counts) == set(FAMILIES)
    assert len(data) > 5000 and min(counts.values()) >= 500
    assert len({ex.instruction for ex in data}) == len(data)


def test_deterministic(data):
    assert generate_instructions(6000, seed=0) == data
    assert generate_instructions(6000, seed=1) != data


def test_every_answer_is_verified_from_the_raw_data(data):
    wrong = [ex for ex in data if not verify(ex)]
    assert wrong == []


def test_verify_rejects_wrong_answers(data):
    for ex in data[:200]:
        other = "ROMEO" if ex.response != "ROMEO" else "JULIET"
        assert not verify(Instruction(ex.instruction, other, ex.family)), ex


def test_the_lectures_examples():
    assert verify(Instruction("Who says 'To be, or not to be'?", "HAMLET", "speaker"))
    assert verify(Instruction("In which play does PROSPERO speak?", "The Tempest", "play"))
    assert verify(Instruction("What is 37 + 45?", "82", "arithmetic"))
    assert not verify(Instruction("In which play does PROSPERO speak?", "Hamlet", "play"))
    assert play_titles()["measure-for-measure"] == "Measure for Measure" and len(play_titles()) == 38


def test_split_holds_out_every_family_and_shares_nothing(data):
    train, held_out = split_instructions(data, held_out=0.1, seed=0)
    assert len(train) + len(held_out) == len(data)
    assert not {ex.instruction for ex in train} & {ex.instruction for ex in held_out}
    per_family = collections.Counter(ex.family for ex in held_out)
    total = collections.Counter(ex.family for ex in data)
    for family in FAMILIES:
        assert per_family[family] == round(total[family] * 0.1)
    assert split_instructions(data, held_out=0.1, seed=0) == (train, held_out)


def test_one_family():
    only = generate_instructions(300, seed=3, families=("first_word",))
    assert len(only) == 300 and {ex.family for ex in only} == {"first_word"}
    assert all(ex.instruction.startswith("What is the first word of '") for ex in only)


def test_bad_input():
    with pytest.raises(ValueError, match="empty instruction set"):
        split_instructions([])
    with pytest.raises(ValueError, match="unknown families"):
        generate_instructions(10, families=("poetry",))
    with pytest.raises(ValueError, match="families is empty"):
        generate_instructions(10, families=())
    with pytest.raises(ValueError, match="positive int"):
        generate_instructions(0)
    with pytest.raises(ValueError, match="fraction"):
        split_instructions([Instruction("a", "b", "capitals")], held_out=1.5)
