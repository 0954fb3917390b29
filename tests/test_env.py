"""The environment contract: spaces, registry, checkers, vector env, info keys, rendering."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import WORD, noise_scenario
from gymnasium.utils.env_checker import check_env

import fdenv
from fdenv.constants import FRAME_SIZE, PAD_ID

PAPER_IDS = [
    "FullDuplex-PauseHandling-v0",
    "FullDuplex-TurnTaking-v0",
    "FullDuplex-Backchannel-v0",
    "FullDuplex-UserInterruption-v0",
    "FullDuplex-Mixed-v0",
]


def fullduplex_ids() -> list[str]:
    return sorted(i for i in gym.registry if i.startswith("FullDuplex-"))


def test_import_registers_the_paper_ids():
    assert set(PAPER_IDS) <= set(fullduplex_ids())


@pytest.mark.parametrize("env_id", fullduplex_ids())
def test_gymnasium_check_env_passes_for_every_registered_id(env_id):
    env = gym.make(env_id, num_scenarios=4)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_spaces_follow_the_contract():
    env = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=2)
    assert env.observation_space == gym.spaces.Box(-1, 1, (FRAME_SIZE,), np.float32)
    assert env.action_space.nvec.tolist() == [32000] + [2048] * 8
    small = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=2, text_card=100, audio_card=16)
    assert small.action_space.nvec.tolist() == [100] + [16] * 8


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    actions = np.zeros((n, 9), dtype=np.int64)
    actions[:, 0] = np.where(rng.random(n) < 0.15, WORD, PAD_ID)
    actions[:, 1:] = rng.integers(0, 2048, (n, 8))
    return actions


def test_episode_plays_lead_in_then_scenario_and_reports_info():
    scenario = noise_scenario("TurnTaking", 4.0, [(0.5, 2.0)], turn_end=2.0)
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario])
    obs, info = env.reset(seed=0)
    assert info["axis"] == "TurnTaking" and info["t"] == -3.0
    assert np.all(obs == 0.0)  # the lead-in is silence
    # 3 s + 4 s = 7 s = 87.5 frames -> 88 steps; the last frame is half padding
    steps, done, seen_user = 0, False, False
    while not done:
        obs, reward, done, truncated, info = env.step(np.full(9, PAD_ID))
        assert set(info) >= {"t", "user_speaking", "agent_speaking"}
        seen_user |= bool(info["user_speaking"])
        assert not truncated
        steps += 1
        if not done:
            assert reward == 0.0
    assert steps == 88 and seen_user
    assert info["reward_terms"] == {"turn": pytest.approx(-2.0)}
    assert info["agent_speech"] == []


def test_first_user_frame_is_the_scenario_audio():
    scenario = noise_scenario("TurnTaking", 4.0, [(0.0, 2.0)], turn_end=2.0)
    env = gym.make("FullDuplex-TurnTaking-v0", scenarios=[scenario], lead_in_s=0.16)
    env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(np.full(9, PAD_ID))
    np.testing.assert_array_equal(obs, scenario.audio[:FRAME_SIZE])


def test_pinned_scenario_by_id_and_seeded_reset_is_deterministic():
    env = gym.make("FullDuplex-Backchannel-v0", num_scenarios=8)
    _, first = env.reset(seed=3)
    _, again = env.reset(seed=3)
    assert first["scenario_id"] == again["scenario_id"]
    _, pinned = env.reset(options={"scenario": "Backchannel-s0-000005"})
    assert pinned["scenario_id"] == "Backchannel-s0-000005"


def test_mixed_samples_every_axis():
    env = gym.make("FullDuplex-Mixed-v0", num_scenarios=2)
    axes = {env.reset(seed=s)[1]["axis"] for s in range(24)}
    assert axes == {"PauseHandling", "TurnTaking", "Backchannel", "UserInterruption"}


def run_single(seed: int, action_seed: int, episodes: int):
    env = gym.make("FullDuplex-Mixed-v0", num_scenarios=3)
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace = []
    for _ in range(episodes):
        done = False
        while not done:
            obs, reward, done, _, info = env.step(random_actions(rng, 1)[0])
            trace.append((obs.copy(), reward, done, bool(info["agent_speaking"])))
        obs, _ = env.reset()
        trace.append((obs.copy(), 0.0, False, False))  # what the vector env shows on autoreset
    return trace


def test_vector_env_matches_single_envs_with_the_same_seeds():
    n, seed = 3, 11
    singles = [run_single(seed + i, 100 + i, episodes=2) for i in range(n)]
    steps = min(len(t) for t in singles)
    venv = gym.make_vec(
        "FullDuplex-Mixed-v0", num_envs=n, vectorization_mode="vector_entry_point", num_scenarios=3
    )
    rngs = [np.random.default_rng(100 + i) for i in range(n)]
    venv.reset(seed=seed)
    dones = np.zeros(n, dtype=bool)
    for k in range(steps):
        # an autoreset step ignores its action, and the single run has no step there: draw none
        actions = np.stack(
            [
                np.zeros(9, np.int64) if d else random_actions(r, 1)[0]
                for r, d in zip(rngs, dones, strict=True)
            ]
        )
        obs, rewards, dones, _, infos = venv.step(actions)
        for i in range(n):
            exp_obs, exp_reward, exp_done, exp_agent = singles[i][k]
            np.testing.assert_array_equal(obs[i], exp_obs)
            assert rewards[i] == exp_reward and dones[i] == exp_done
            assert infos["agent_speaking"][i] == exp_agent


def test_vector_groups_share_a_scenario():
    venv = gym.make_vec(
        "FullDuplex-Mixed-v0",
        num_envs=8,
        vectorization_mode="vector_entry_point",
        group_size=4,
        num_scenarios=8,
    )
    _, infos = venv.reset(seed=0)
    ids = infos["scenario_id"]
    assert len(set(ids[:4])) == 1 and len(set(ids[4:])) == 1
    obs, *_ = venv.step(np.full((8, 9), PAD_ID))
    for _ in range(60):
        obs, *_ = venv.step(np.full((8, 9), PAD_ID))
    np.testing.assert_array_equal(obs[0], obs[3])


def test_vector_env_with_autoreset_disabled_idles_until_reset():
    scenario = noise_scenario("TurnTaking", 1.0, [(0.1, 0.9)], turn_end=0.9)
    venv = fdenv.FullDuplexVectorEnv(
        2, "TurnTaking", [scenario], autoreset_mode="Disabled", lead_in_s=0.0
    )
    venv.reset(seed=0)
    for _ in range(13):  # 1 s = 12.5 frames -> 13 steps
        _, _, dones, _, infos = venv.step(np.full((2, 9), PAD_ID))
    assert dones.all() and infos["_reward_terms"].all()
    obs, rewards, dones, _, _ = venv.step(np.full((2, 9), PAD_ID))  # finished envs idle
    assert not obs.any() and not rewards.any() and not dones.any()
    venv.reset(options={"reset_mask": np.array([True, True])})
    venv.step(np.full((2, 9), PAD_ID))


def test_vector_env_rejects_bad_group_sizes():
    with pytest.raises(ValueError, match="multiple of group_size"):
        fdenv.FullDuplexVectorEnv(6, group_size=4)


def test_render_draws_a_timeline():
    env = gym.make("FullDuplex-UserInterruption-v0", num_scenarios=2, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(50):
        env.step(np.full(9, PAD_ID))
    image = env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.std() > 0  # something was drawn


def test_torchrl_gym_env_passes_check_env_specs():
    torchrl_envs = pytest.importorskip("torchrl.envs")
    from torchrl.envs.utils import check_env_specs

    env = torchrl_envs.GymEnv("FullDuplex-TurnTaking-v0", categorical_action_encoding=True)
    check_env_specs(env)
    rollout = env.rollout(5)
    assert rollout["observation"].shape == (5, FRAME_SIZE)


def test_vector_reset_pins_one_scenario_per_group():
    venv = fdenv.FullDuplexVectorEnv(4, "Backchannel", group_size=2, num_scenarios=5)
    ids = venv.sampler.ids("Backchannel")
    assert ids == [f"Backchannel-s0-00000{i}" for i in range(5)]
    _, infos = venv.reset(seed=0, options={"scenario": [ids[3], ids[1]]})
    assert list(infos["scenario_id"]) == [ids[3], ids[3], ids[1], ids[1]]
    with pytest.raises(ValueError, match="lists 1 values for 2 groups"):
        venv.reset(options={"scenario": [ids[0]]})


def test_axis_weights_set_the_mix_of_axes():
    from fdenv.axes import PAPER_AXES
    from fdenv.sampler import ScenarioSampler

    axes = list(PAPER_AXES)
    weights = {"TurnTaking": 5.0, "PauseHandling": 0.0}  # the other two weigh 1: 5/7, 0, 1/7, 1/7
    sampler = ScenarioSampler(axes, num_scenarios=2, axis_weights=weights)
    rng = np.random.default_rng(0)
    drawn = [sampler._draw_axis(rng) for _ in range(7000)]
    assert drawn.count("PauseHandling") == 0
    assert abs(drawn.count("TurnTaking") / 7000 - 5 / 7) < 0.02
    assert abs(drawn.count("Backchannel") / 7000 - 1 / 7) < 0.02
    env = gym.make("FullDuplex-Mixed-v0", num_scenarios=2, axis_weights={"Backchannel": 1.0})
    assert env.unwrapped.sampler._probabilities.tolist() == [0.25] * 4
    with pytest.raises(ValueError, match=r"names \['Greeting'\]"):
        ScenarioSampler(axes, num_scenarios=1, axis_weights={"Greeting": 1.0})
    with pytest.raises(ValueError, match="not all 0"):
        ScenarioSampler(axes, num_scenarios=1, axis_weights={a.name: 0.0 for a in axes})
    with pytest.raises(ValueError, match=">= 0"):
        ScenarioSampler(axes, num_scenarios=1, axis_weights={"TurnTaking": -1.0})


def test_balanced_axes_give_each_axis_the_floor_or_ceiling_of_its_share():
    from collections import Counter

    from fdenv.axes import PAPER_AXES
    from fdenv.sampler import ScenarioSampler

    axes = list(PAPER_AXES)
    rng = np.random.default_rng(0)
    uniform = ScenarioSampler(axes, num_scenarios=1)
    for _ in range(50):  # 4 groups over 4 equal axes: each axis once, in some order
        assert sorted(uniform.balanced_axes(4, rng)) == sorted(a.name for a in axes)
    orders = Counter(tuple(uniform.balanced_axes(4, rng)) for _ in range(2000))
    assert len(orders) == 24  # every order of the four occurs
    # PauseHandling 2/5 of 4 groups = 1.6: once or twice; the others 0.8: never twice
    weighted = ScenarioSampler(axes, num_scenarios=1, axis_weights={"PauseHandling": 2.0})
    plans = [Counter(weighted.balanced_axes(4, rng)) for _ in range(4000)]
    assert all(1 <= plan["PauseHandling"] <= 2 and max(plan.values()) <= 2 for plan in plans)
    pause_share = sum(plan["PauseHandling"] for plan in plans) / (4 * 4000)
    assert abs(pause_share - 0.4) < 0.01  # the weights' mean holds
    assert Counter(weighted.balanced_axes(1, rng)[0] for _ in range(5000))["PauseHandling"] > 1800
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="count must be an int >= 1"):
            uniform.balanced_axes(bad, rng)


def test_reset_option_axis_draws_the_scenario_from_that_axis():
    venv = fdenv.FullDuplexVectorEnv(4, "Mixed", group_size=2, num_scenarios=3)
    for plan in (["Backchannel", "PauseHandling"], ["UserInterruption", "UserInterruption"]):
        _, infos = venv.reset(seed=5, options={"axis": plan})
        assert list(infos["axis"]) == [plan[0], plan[0], plan[1], plan[1]]
    _, infos = venv.reset(seed=5, options={"axis": "TurnTaking"})
    assert set(infos["axis"]) == {"TurnTaking"}
    with pytest.raises(ValueError, match="must name one of this env's axes"):
        venv.reset(options={"axis": "Greeting"})
    with pytest.raises(ValueError, match="lists 3 values for 2 groups"):
        venv.reset(options={"axis": ["TurnTaking"] * 3})
    single = gym.make("FullDuplex-TurnTaking-v0", num_scenarios=2)
    for bad in ("Backchannel", ["TurnTaking"], None):
        with pytest.raises(ValueError, match="must name one of this env's axes"):
            single.reset(options={"axis": bad})


def test_info_metrics_can_be_left_out_without_changing_rewards():
    def last_infos(**settings) -> list[tuple[float, dict]]:
        env = fdenv.FullDuplexVectorEnv(4, "Mixed", num_scenarios=4, **settings)
        env.reset(seed=11)
        actions = np.zeros((4, 9), dtype=np.int64)
        actions[:, 0] = PAD_ID
        ended = []
        for step in range(400):
            actions[:, 0] = WORD if step % 6 == 0 else PAD_ID
            _, rewards, done, _, info = env.step(actions)
            ended += [(float(rewards[i]), info) for i in np.flatnonzero(done)]
        return ended

    full, bare = last_infos(), last_infos(info_metrics=False)
    assert len(full) == len(bare) > 4
    assert [r for r, _ in full] == [r for r, _ in bare]
    assert all("metrics" in info for _, info in full)
    assert not any("metrics" in info for _, info in bare)
    with pytest.raises(ValueError, match="info_metrics must be True or False"):
        fdenv.FullDuplexEnv("TurnTaking", info_metrics="yes")
