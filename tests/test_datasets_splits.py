"""stratified_split: bad labels and fractions give clear errors; good ones split exactly."""

import pytest
import torch

from interp_lib.datasets import stratified_split


def test_split_keeps_class_shares_and_covers_every_index():
    labels = torch.tensor([0] * 10 + [1] * 20)
    a, b = stratified_split(labels, (0.7, 0.3), seed=0)
    assert torch.equal(torch.sort(torch.cat([a, b])).values, torch.arange(30))
    assert (labels[a] == 0).sum() == 7 and (labels[a] == 1).sum() == 14
    assert [t.tolist() for t in stratified_split(labels.tolist(), [0.5, 0.5], seed=3)] == [
        t.tolist() for t in stratified_split(labels, (0.5, 0.5), seed=3)
    ]
    # whole-number float labels are class indices too
    assert torch.equal(stratified_split(labels.double(), (0.5, 0.5))[0],
                       stratified_split(labels, (0.5, 0.5))[0])  # fmt: skip


@pytest.mark.parametrize("labels", [[], torch.tensor([], dtype=torch.long)])
def test_empty_labels(labels):
    with pytest.raises(ValueError, match="labels is empty"):
        stratified_split(labels, (0.5, 0.5))


@pytest.mark.parametrize(
    ("labels", "exc", "match"),
    [
        ([0.5, 1.7, 0.2], ValueError, "whole numbers"),  # used to be truncated to 0, 1, 0
        ([0, float("nan")], ValueError, "whole numbers"),
        (torch.zeros(4, 2, dtype=torch.long), ValueError, "1-D"),
        (["a", "b"], TypeError, "integers"),
        ([True, False], TypeError, "integers"),
        ([[0, 1], [2]], ValueError, "1-D"),
    ],
)
def test_bad_labels(labels, exc, match):
    with pytest.raises(exc, match=match):
        stratified_split(labels, (0.5, 0.5))


@pytest.mark.parametrize(
    ("fractions", "exc"),
    [
        ((1.0,), ValueError),
        ((0.5, 0.6), ValueError),
        ((float("nan"), 0.5), ValueError),
        ((0.0, 1.0), ValueError),
        (0.5, TypeError),
        ("ab", TypeError),
        (("0.5", "0.5"), TypeError),
    ],
)
def test_bad_fractions(fractions, exc):
    with pytest.raises(exc, match="fractions"):
        stratified_split([0, 1, 0, 1], fractions)


def test_tensor_fractions_are_accepted():
    assert len(stratified_split([0, 1, 0, 1], torch.tensor([0.5, 0.5]))) == 2
