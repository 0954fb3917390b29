"""The engine's frame bank and fast paths: every observation is its stream's frame whatever the
order in which envs restart (also when a longer stream rebuilds the bank mid-episode), a group
keeps one copy of its stream, restarts never rebuild the bank, and the single env's scalar step
gives what the vector step gives."""

import dataclasses

import numpy as np
import pytest
from conftest import WORD, LevelVoice

import fdenv
from fdenv.constants import FRAME_SIZE, NUM_CODEBOOKS, PAD_ID
from fdenv.engine import make_stream
from fdenv.scenario import Scenario
from fdenv.timeline import Interval
from fdenv.voice import Voice

LEAD = 1.0


def scenario(index: int, duration: float) -> Scenario:
    """A TurnTaking scenario of ``duration`` seconds whose audio says which one it is."""
    rng = np.random.default_rng(index)
    audio = rng.uniform(-0.1, 0.1, round(duration * 24_000)).astype(np.float32)
    end = duration - 0.3
    return Scenario(
        id=f"bank-{index}",
        axis="TurnTaking",
        audio=audio,
        user_speech=[Interval(0.2, end)],
        turn_end=end,
    )


SCENARIOS = [scenario(i, d) for i, d in enumerate([1.3, 2.9, 0.9, 4.6, 2.2, 6.1])]
BY_ID = {s.id: s for s in SCENARIOS}


def frames(scenario_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The stream of a scenario as the env must play it: audio frames and user labels."""
    stream = make_stream(BY_ID[scenario_id], LEAD)
    return stream.audio.reshape(-1, FRAME_SIZE), stream.user_speaking


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    actions = np.zeros((n, 1 + NUM_CODEBOOKS), dtype=np.int64)
    actions[:, 0] = np.where(rng.random(n) < 0.3, WORD, PAD_ID)
    return actions


def test_envs_restarting_one_at_a_time_hear_their_own_streams():
    env = fdenv.FullDuplexVectorEnv(5, "TurnTaking", SCENARIOS, lead_in_s=LEAD)
    bank = env._engine._bank
    moved_mid_episode = []
    rebuild = bank._rebuild

    def spy(slot_rows: int, slots: int) -> None:
        if slot_rows != bank.slot_rows:
            moved_mid_episode.append(bool(np.any(env._engine.frame[env._engine.running] > 0)))
        rebuild(slot_rows, slots)

    bank._rebuild = spy
    rng = np.random.default_rng(0)
    short = ["bank-2", "bank-0", "bank-4", "bank-1", "bank-2"]  # then longer ones at random
    obs, info = env.reset(seed=4, options={"scenario": short})
    played = [frames(info["scenario_id"][i]) for i in range(env.num_envs)]
    frame = np.zeros(env.num_envs, dtype=int)
    ended = np.zeros(env.num_envs, dtype=bool)
    episodes = 0
    for _ in range(400):
        for i in range(env.num_envs):
            audio, _ = played[i]
            expected = np.zeros(FRAME_SIZE) if ended[i] else audio[frame[i]]
            np.testing.assert_array_equal(obs[i], expected)
        obs, _, terminated, _, info = env.step(random_actions(rng, env.num_envs))
        for i in range(env.num_envs):
            if ended[i]:  # the autoreset step: the new episode's first frame
                played[i], frame[i], ended[i] = frames(info["scenario_id"][i]), 0, False
                episodes += 1
                continue
            assert info["user_speaking"][i] == played[i][1][frame[i]]
            frame[i] += 1
            ended[i] = terminated[i]
    assert episodes > 30
    assert True in moved_mid_episode, "no longer stream arrived while others were mid-episode"


def test_restarts_reuse_slots_and_rebuild_the_bank_a_few_times_at_most():
    env = fdenv.FullDuplexVectorEnv(6, "TurnTaking", SCENARIOS, lead_in_s=LEAD)
    bank = env._engine._bank
    rebuilds = []
    rebuild = bank._rebuild
    bank._rebuild = lambda rows, slots: (rebuilds.append((rows, slots)), rebuild(rows, slots))
    rng = np.random.default_rng(1)
    env.reset(seed=0)
    restarts = 0
    for _ in range(600):
        restarts += int(np.count_nonzero(env.step(random_actions(rng, 6))[2]))
    assert restarts > 50
    assert len(rebuilds) <= 8
    assert len(bank._envs) <= env.num_envs  # never more slots than envs
    longest = max(make_stream(s, LEAD).num_frames for s in SCENARIOS)
    assert bank.slot_rows <= 2 * (longest + 1)


def test_a_group_keeps_one_copy_of_its_stream():
    env = fdenv.FullDuplexVectorEnv(8, "TurnTaking", SCENARIOS, group_size=4, lead_in_s=LEAD)
    env.reset(seed=2, options={"scenario": ["bank-0", "bank-1"]})
    slots = env._engine._slot
    assert len(set(slots[:4].tolist())) == 1 and len(set(slots[4:].tolist())) == 1
    assert slots[0] != slots[4]
    rng = np.random.default_rng(3)
    for _ in range(300):
        env.step(random_actions(rng, 8))
        running = env._engine.running
        in_use = {int(slot) for slot, on in zip(slots, running, strict=True) if on}
        assert sum(1 for users in env._engine._bank._envs if users) <= 2
        assert len(in_use) <= 2  # one per group, or one for both on the same scenario


def test_restarts_over_a_pool_find_their_frames_loaded_and_copy_nothing():
    env = fdenv.FullDuplexVectorEnv(6, "TurnTaking", SCENARIOS[:3], lead_in_s=LEAD)
    bank = env._engine._bank
    loads = []
    load = bank._load
    bank._load = lambda stream: (loads.append(stream.scenario.id), load(stream))[1]
    env.reset(seed=5)
    rng = np.random.default_rng(2)
    restarts = 0
    for _ in range(300):
        restarts += int(np.count_nonzero(env.step(random_actions(rng, 6))[2]))
    assert restarts > 40
    assert sorted(loads) == ["bank-0", "bank-1", "bank-2"]  # each scenario copied once
    # Envs on the same scenario share its slot; every observation is still its own frame
    # (test_envs_restarting_one_at_a_time_hear_their_own_streams checks the frames).


def test_loaded_scenario_audio_cannot_change_under_the_bank():
    fresh = dataclasses.replace(SCENARIOS[0], id="mutable", audio=SCENARIOS[0].audio.copy())
    env = fdenv.FullDuplexEnv("TurnTaking", [fresh], lead_in_s=LEAD)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="read-only"):
        fresh.audio[:10] = 0.5  # would be replayed stale from the loaded slot


def toy_audio_voice() -> LevelVoice:
    """Speaks on word tokens and 'decodes' audio codebook 0 into a constant frame: a voice that
    makes audio, to check the agent audio history and the default one-env step."""
    return LevelVoice(lambda actions: actions[:, 1:2] / 2048)


def play_single_and_vector(voice: str | Voice) -> None:
    """Two episodes of the single env and of a one-env vector env, same seeds and actions."""
    single = fdenv.FullDuplexEnv("TurnTaking", SCENARIOS, lead_in_s=LEAD, voice=voice)
    vector = fdenv.FullDuplexVectorEnv(
        1, "TurnTaking", SCENARIOS, lead_in_s=LEAD, voice=voice, autoreset_mode="Disabled"
    )
    rng = np.random.default_rng(5)
    for seed in (7, None):
        obs, info = single.reset(seed=seed)
        batch, batch_info = vector.reset(seed=seed, options={"reset_mask": np.ones(1, bool)})
        assert info["scenario_id"] == batch_info["scenario_id"][0]
        done = False
        while not done:
            np.testing.assert_array_equal(obs, batch[0])
            actions = random_actions(rng, 1)
            actions[0, 1] = rng.integers(2048)
            obs, reward, done, _, info = single.step(actions[0])
            batch, rewards, dones, _, batch_info = vector.step(actions)
            assert (reward, done) == (rewards[0], dones[0])
            for key in ("t", "user_speaking", "agent_speaking"):
                assert (
                    info[key] == batch_info[key][0]
                    and type(info[key]) is np.dtype(batch_info[key].dtype).type
                )
        assert info["agent_speech"] == batch_info["agent_speech"][0]
        mine, theirs = single.episode(), vector.episode(0)
        np.testing.assert_array_equal(mine.text_tokens, theirs.text_tokens)
        if mine.agent_audio is not None:
            expected = np.repeat(mine.agent_audio[::FRAME_SIZE], FRAME_SIZE)
            np.testing.assert_array_equal(mine.agent_audio, expected)
            np.testing.assert_array_equal(mine.agent_audio, theirs.agent_audio)
            assert len(mine.agent_audio) == mine.num_frames * FRAME_SIZE


def test_the_single_env_step_gives_what_the_vector_step_gives():
    play_single_and_vector("text")


def test_a_voice_that_makes_audio_keeps_its_frames_in_both_envs():
    play_single_and_vector(toy_audio_voice())


def test_stream_audio_is_the_same_on_every_call_and_written_over_any_content():
    stream = make_stream(dataclasses.replace(SCENARIOS[3]), 3.0)
    out = np.full(stream.num_frames * FRAME_SIZE, 7.0, dtype=np.float32)
    stream.write(out)
    np.testing.assert_array_equal(out, stream.audio)
    start = round(stream.lead_in_s * 24_000)
    assert not out[:start].any() and not out[start + len(SCENARIOS[3].audio) :].any()


def test_vector_infos_have_gymnasiums_layout():
    from gymnasium.vector import VectorEnv

    env = fdenv.FullDuplexVectorEnv(4, "TurnTaking", SCENARIOS, lead_in_s=LEAD)
    infos = [
        {"a": 1, "b": 0.5, "c": True, "d": np.float64(2.0), "e": np.bool_(True)},
        {"f": np.arange(3.0), "g": [(0.1, 0.2)], "h": "x", "n": {"m": np.float64(1.0)}},
        {"a": 4, "n": {"m": np.float64(3.0), "k": {"z": 7}}, "g": []},
    ]
    ours, theirs = {}, {}
    for env_num, info in [(2, infos[0]), (0, infos[1]), (3, infos[2]), (1, infos[0])]:
        ours = env._add_info(ours, info, env_num)
        theirs = VectorEnv._add_info(env, theirs, info, env_num)

    def same(a: dict, b: dict) -> None:
        assert sorted(a) == sorted(b)
        for key in a:
            if isinstance(a[key], dict):
                same(a[key], b[key])
            else:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
                assert [repr(x) for x in a[key].tolist()] == [repr(x) for x in b[key].tolist()]

    same(ours, theirs)
