import io

import numpy as np
import pytest
import torch

from epeflow.errors import EpeflowError
from epeflow.train.data import WeightedPairSampler


def test_draws_follow_the_weights():
    weights = np.array([1.0, 0.0, 3.0, 6.0, 0.5])
    draws = WeightedPairSampler(weights, seed=0).draw(200_000)
    assert draws.dtype == np.int64
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.005)
    assert freq[1] == 0


def test_rule_is_the_references_first_cumsum_above_u():
    weights = np.random.default_rng(1).random(50)
    sampler = WeightedPairSampler(weights, seed=3)
    u = np.random.default_rng(3).random(1000)  # the sampler's own stream
    cumsum = np.cumsum(weights) / np.sum(weights)
    expected = [np.min(np.nonzero(p < cumsum)[0]) for p in u]
    np.testing.assert_array_equal(sampler.draw(1000), expected)


def test_same_seed_same_draws_other_seed_other_draws():
    w = np.ones(100)
    a = WeightedPairSampler(w, seed=7).draw(50)
    np.testing.assert_array_equal(a, WeightedPairSampler(w, seed=7).draw(50))
    assert not np.array_equal(a, WeightedPairSampler(w, seed=8).draw(50))


def test_resume_mid_stream_through_a_weights_only_checkpoint():
    w = np.random.default_rng(0).random(1000)
    straight = WeightedPairSampler(w, seed=11)
    first, rest = straight.draw(37), straight.draw(100)

    sampler = WeightedPairSampler(w, seed=11)
    np.testing.assert_array_equal(sampler.draw(37), first)
    buffer = io.BytesIO()
    torch.save({"sampler": sampler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["sampler"]
    resumed = WeightedPairSampler(w, seed=0)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.draw(100), rest)
    assert resumed.drawn == 137 and resumed.seed == 11


def test_state_of_other_pairs_is_refused():
    state = WeightedPairSampler(np.ones(10), seed=0).state_dict()
    with pytest.raises(EpeflowError, match="built on 10 matched pairs, the weights now have 11"):
        WeightedPairSampler(np.ones(11), seed=0).load_state_dict(state)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([], "empty"), ([1.0, -1.0], "finite and >= 0"), ([1.0, np.nan], "finite"), ([0.0, 0.0], "all zero")],
)
def test_bad_weights_are_errors(weights, message):
    with pytest.raises(EpeflowError, match=message):
        WeightedPairSampler(np.array(weights), seed=0)
