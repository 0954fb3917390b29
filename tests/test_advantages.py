"""Group advantages and decoupled normalisation, against hand-computed values."""

import numpy as np
import pytest

from agents.grpo.advantages import EPS, decoupled_advantages, group_advantages


def test_group_scaling_uses_the_unbiased_group_std():
    # groups [1, 2] and [3, 5]: means 1.5 and 4; unbiased stds sqrt(0.5) and sqrt(2)
    adv = group_advantages(np.array([1.0, 2.0, 3.0, 5.0]), group_size=2)
    expected = [
        -0.5 / (0.5**0.5 + EPS),
        0.5 / (0.5**0.5 + EPS),
        -1 / (2**0.5 + EPS),
        1 / (2**0.5 + EPS),
    ]
    np.testing.assert_allclose(adv.values, expected)
    assert (adv.flat_groups, adv.groups) == (0, 2)


def test_batch_and_no_scaling():
    rewards = np.array([1.0, 2.0, 3.0, 5.0])
    batch_std = np.std(rewards, ddof=1)  # 1.7078
    np.testing.assert_allclose(
        group_advantages(rewards, 2, "batch").values,
        np.array([-0.5, 0.5, -1, 1]) / (batch_std + EPS),
    )
    np.testing.assert_allclose(group_advantages(rewards, 2, "none").values, [-0.5, 0.5, -1, 1])


def test_flat_groups_give_zero_advantage_and_are_counted():
    adv = group_advantages(np.array([-1.0, -1.0, -1.0, 0.0, 0.0, 2.0]), group_size=3)
    np.testing.assert_allclose(adv.values[:3], 0.0)
    assert adv.flat_groups == 1 and adv.groups == 2


def test_bad_shapes_and_modes():
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(np.zeros(5), 2)
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(np.zeros(4), 2, "rank")


def test_decoupled_terms_are_z_scored_apart_then_summed():
    # timing [-2, 0]: mean -1, unbiased std sqrt(2) -> z = -1/sqrt(2), +1/sqrt(2)
    # judge [0, 2]: the same spread, the same z, weighted 0.5
    terms = {"turn": np.array([-2.0, 0.0]), "llm": np.array([0.0, 2.0])}
    adv = decoupled_advantages(terms, 2, weights={"llm": 0.5}, batch_norm=False)
    z = 1 / (2**0.5 + EPS)
    np.testing.assert_allclose(adv.values, [-z - 0.5 * z, z + 0.5 * z])


def test_decoupled_skips_missing_values():
    # a failed judge (NaN) leaves the group's other two: mean 1, std sqrt(2)
    terms = {"llm": np.array([0.0, np.nan, 2.0])}
    adv = decoupled_advantages(terms, 3, batch_norm=False)
    z = 1 / (2**0.5 + EPS)
    np.testing.assert_allclose(adv.values, [-z, 0.0, z])


def test_decoupled_rejects_unknown_weights():
    with pytest.raises(ValueError, match="unknown reward terms"):
        decoupled_advantages({"turn": np.zeros(2)}, 2, weights={"llm": 1.0})


def test_decoupled_missing_judge_keeps_the_timing_term():
    # group 0: timing [-3, -1, -2] (mean -2, std 1); judge [0, NaN, 2] (mean 1, std sqrt 2)
    # group 1: timing [0, 0, 3] (mean 1, std sqrt 3); judge missing everywhere: dropped
    terms = {
        "turn": np.array([-3.0, -1.0, -2.0, 0.0, 0.0, 3.0]),
        "llm": np.array([0.0, np.nan, 2.0, np.nan, np.nan, np.nan]),
    }
    adv = decoupled_advantages(terms, 3, batch_norm=False)
    one, two, three = 1 / (1 + EPS), 1 / (2**0.5 + EPS), 1 / (3**0.5 + EPS)
    expected = [-one - two, one, two, -three, -three, 2 * three]
    np.testing.assert_allclose(adv.values, expected)
    assert (adv.flat_groups, adv.groups) == (0, 2)


def test_decoupled_term_in_one_rollout_only_gives_nothing_and_flat_groups_count():
    # group 0: timing flat, judge in one rollout only (nothing to compare with): flat
    # group 1: timing [2, 5] (mean 3.5, std sqrt 4.5); judge missing
    terms = {"turn": np.array([1.0, 1.0, 2.0, 5.0]), "llm": np.array([np.nan, 2.0, np.nan, np.nan])}
    adv = decoupled_advantages(terms, 2, batch_norm=False)
    z = 1.5 / (4.5**0.5 + EPS)
    np.testing.assert_allclose(adv.values, [0.0, 0.0, -z, z])
    assert (adv.flat_groups, adv.groups) == (1, 2)


def test_decoupled_rollout_missing_every_term_gets_zero():
    terms = {"turn": np.array([np.nan, -1.0, 1.0]), "llm": np.array([np.nan, 0.0, 2.0])}
    adv = decoupled_advantages(terms, 3, batch_norm=False)
    z = 1 / (2**0.5 + EPS)  # both terms: [-1, 1] around their mean, std sqrt 2
    np.testing.assert_allclose(adv.values, [0.0, -2 * z, 2 * z])
    assert np.isfinite(adv.values).all()


def test_gdpo_batch_step_z_scores_the_sum_over_the_batch():
    # group 0: turn [-2, 0] and llm [0, 2] both z = -+1/sqrt 2; group 1: turn [1, 3] the same,
    # llm [2, 2] flat (0). Sums z * [-2, 2, -1, 1] (z = 1/(sqrt 2 + EPS)): batch mean 0,
    # unbiased std z * sqrt((4 + 4 + 1 + 1) / 3)
    terms = {"turn": np.array([-2.0, 0.0, 1.0, 3.0]), "llm": np.array([0.0, 2.0, 2.0, 2.0])}
    z = 1 / (2**0.5 + EPS)
    adv = decoupled_advantages(terms, 2)
    expected = np.array([-2.0, 2.0, -1.0, 1.0]) * z / (z * (10 / 3) ** 0.5 + EPS)
    np.testing.assert_allclose(adv.values, expected)
    np.testing.assert_allclose(np.std(adv.values, ddof=1), 1.0, atol=1e-4)
    plain = decoupled_advantages(terms, 2, batch_norm=False)
    np.testing.assert_allclose(plain.values, np.array([-2.0, 2.0, -1.0, 1.0]) * z)


def test_gdpo_batch_step_keeps_flat_groups_at_zero():
    # group 0 flat in every term, group 1 [0, 2]: after the batch step group 0 still has no signal
    terms = {"turn": np.array([1.0, 1.0, 0.0, 2.0])}
    adv = decoupled_advantages(terms, 2)
    np.testing.assert_allclose(adv.values[:2], 0.0)
    assert adv.values[2] < 0 < adv.values[3] and adv.flat_groups == 1


def test_decoupled_rejects_mismatched_or_infinite_terms():
    with pytest.raises(ValueError, match="same shape"):
        decoupled_advantages({"turn": np.zeros(4), "llm": np.zeros(6)}, 2)
    with pytest.raises(ValueError, match=r"\['llm'\] hold \+-inf"):
        decoupled_advantages({"turn": np.zeros(2), "llm": np.array([1.0, -np.inf])}, 2)
    with pytest.raises(ValueError, match="no reward terms"):
        decoupled_advantages({}, 2)
