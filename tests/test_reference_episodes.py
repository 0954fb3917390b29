"""Every env gives the numbers it gave when ``tests/data/reference_episodes.json`` was recorded:
rewards, reward terms, stats, FD-Bench metrics, agent speech and observations, bit for bit, for
scripted agents and seeded random actions on the single and the vector env (groups, acoustics,
recorded context). A refactor or a speed-up of the env must not move any of them."""

import json

import pytest
from record_reference import PATH, record


@pytest.mark.slow
def test_envs_reproduce_the_recorded_episodes():
    expected = json.loads(PATH.read_text())
    actual = json.loads(json.dumps(record()))  # the same float formatting as the file
    assert sorted(actual) == sorted(expected)
    for run, episodes in expected.items():
        assert actual[run] == episodes, f"{run} differs from the recording"
