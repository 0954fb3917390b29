"""The simulated user who hears the agent: its timing rules frame by frame, determinism, GRPO
groups, records, bad input and a replaceable policy.

A TextVoice that holds a word for one frame makes the agent's speaking state exactly the frames
the test says, so every expected time below is a count of 80 ms frames: the lead-in is 5 frames,
``F`` the frames of the user's line as stored, and the traits are fixed ranges.
"""

from __future__ import annotations

import numpy as np
import pytest
from chat_server import Reply, chat_server, completion

import fdenv
from agents.baselines import RuleAgent
from fdenv.audio.espeak import SpeakerStyle
from fdenv.axes import Conversation, Selectivity
from fdenv.constants import FRAME_S, PAD_ID
from fdenv.judge.client import ChatCompletionsJudge
from fdenv.play import play
from fdenv.registration import get_axis
from fdenv.user.config import UserConfig
from fdenv.user.llm import LLMUser, clean
from fdenv.user.plan import Line, Turn, UserPlan
from fdenv.user.policy import UserPolicy
from fdenv.user.simulator import UserPolicyError
from fdenv.user.store import store_scenario, stored_lines
from fdenv.voice import TextVoice

STYLE = SpeakerStyle("en-us", 160, 50)
LEAD_FRAMES = 5
WORD = 100


def fixed_user(**changes) -> UserConfig:
    """A user whose every knob is one value: gap 5 frames, re-prompt after 25, yield after 5."""
    knobs = dict(
        answer_gap_s=(0.4, 0.4),
        reprompt_after_s=(2.0, 2.0),
        max_reprompts=1,
        yield_after_s=(0.4, 0.4),
        finish_probability=(0.0, 0.0),
        backchannel_probability=(0.0, 0.0),
        interrupt_probability=(0.0, 0.0),
    )
    return UserConfig(**(knobs | changes))


def plan(*turns: Turn, max_duration_s: float = 20.0) -> UserPlan:
    reprompts = (Line("reprompt", "Are you there?", STYLE),)
    return UserPlan(turns=turns, reprompts=reprompts, max_duration_s=max_duration_s)


def one_line(text: str = "Where did you grow up as a kid?") -> Turn:
    return Turn((Line("turn", text, STYLE),))


def make_env(user_plan: UserPlan, axis=None, **settings):
    axis = axis or Conversation(user=fixed_user())
    scenario = store_scenario(user_plan, "plan-0", axis.name, {})
    voice = settings.pop("voice", TextVoice(hold_frames=1))
    return fdenv.FullDuplexEnv(axis, [scenario], lead_in_s=0.4, voice=voice, **settings)


def run(env, speaks, seed: int = 0):
    """Plays one episode; ``speaks(frame)`` says whether the agent talks in stream frame k."""
    obs, _ = env.reset(seed=seed)
    observations, frame = [obs], 0
    while True:
        action = np.full(9, PAD_ID, dtype=np.int64)
        action[0] = WORD if speaks(frame) else PAD_ID
        obs, _, terminated, _, info = env.step(action)
        observations.append(obs)
        frame += 1
        if terminated:
            return env.unwrapped.last_episode, info, np.stack(observations[:-1])


def events(episode) -> list[tuple[float, str]]:
    return [(e.t, e.kind) for e in episode.events]


def line_frames(user_plan: UserPlan, line: Line) -> int:
    return stored(user_plan, line).frames


def stored(user_plan: UserPlan, line: Line):
    scenario = store_scenario(user_plan, "plan-0", "Conversation", {})
    return stored_lines(scenario, user_plan.lines())[line]


def t(frames: int) -> float:
    return round(frames * FRAME_S, 6)


def test_a_silent_agent_is_reprompted_then_the_user_gives_up():
    user_plan = plan(one_line())
    turn, again = (
        stored(user_plan, user_plan.turns[0].parts[0]),
        stored(user_plan, user_plan.reprompts[0]),
    )
    F, R = turn.frames, again.frames
    episode, info, _ = run(make_env(user_plan), lambda k: False)
    # the turn's sound ends inside its F-th frame; 25 silent frames after that frame the user
    # re-prompts, and 25 frames after the re-prompt's last frame it gives up
    assert events(episode) == [
        (0.0, "user_turn_start"),
        (round(turn.duration_s, 6), "user_turn_end"),
        (t(F + 25), "user_reprompt"),
        (round(t(F + 25) + again.duration_s, 6), "user_turn_end"),
        (t(F + 25 + R + 25), "user_gives_up"),
        (t(F + 25 + R + 25), "episode_end"),
    ]
    assert episode.events[-1].cause == "the user has nothing more to say"
    assert info["metrics"]["reprompts"] == 1.0
    assert info["metrics"]["response_rate"] == 0.0


def test_an_answer_is_heard_and_the_user_takes_its_next_turn_after_its_gap():
    first, second = one_line(), one_line("I like the sea.")
    user_plan = plan(first, second)
    line = stored(user_plan, first.parts[0])
    F = line.frames
    start = LEAD_FRAMES + F + 3  # the agent starts 3 frames after the turn's last, for 15
    episode, info, _ = run(make_env(user_plan), lambda k: start <= k < start + 15)
    kinds = events(episode)
    latency = t(F + 3) - line.duration_s  # from the end of the turn's sound
    assert kinds[2] == (t(F + 3), "agent_response")  # logged at the onset, once 13 frames long
    assert episode.events[2].cause == f"{latency:.2f} s after the user's turn ended"
    # 15 frames of answer, then 5 silent frames (the gap): the next turn starts
    assert kinds[3] == (t(F + 3 + 15 + 5), "user_turn_start")
    assert info["metrics"]["answer_latency"] == pytest.approx(latency, abs=1e-6)
    # the second turn is never answered: (1 - latency / 2 + 0) / 2
    assert info["reward_terms"]["answer"] == pytest.approx((1 - latency / 2.0) / 2, abs=1e-6)


def test_a_burst_of_a_second_or_less_is_a_backchannel_and_the_user_waits_on():
    user_plan = plan(one_line())
    F = line_frames(user_plan, user_plan.turns[0].parts[0])
    start = LEAD_FRAMES + F + 3  # 12 frames (0.96 s): not an answer
    episode, info, _ = run(make_env(user_plan), lambda k: start <= k < start + 12)
    kinds = events(episode)
    assert "agent_response" not in [kind for _, kind in kinds]
    assert kinds[2] == (t(F + 25), "user_reprompt")  # on the deadline set when its turn ended
    assert info["metrics"]["response_rate"] == 0.0


def test_talked_over_the_user_trails_off_at_a_word_boundary_then_says_it_again():
    turn = one_line("Could you tell me how long the drive to the coast takes?")
    user_plan = plan(turn)
    scenario = store_scenario(user_plan, "plan-0", "Conversation", {})
    stored = stored_lines(scenario, user_plan.lines())[turn.parts[0]]
    talk = range(LEAD_FRAMES + 2, LEAD_FRAMES + 17)  # from the user's 3rd frame, 15 frames
    episode, _, _ = run(make_env(user_plan), lambda k: k in talk)
    kinds = [kind for _, kind in events(episode)]
    assert kinds[:4] == ["user_turn_start", "agent_barge_in", "user_yield", "user_resume"]
    # 5 frames of overlap (user frames 2-6) decide at frame 7: the word under way ends at the
    # first word end >= 7 frames into the line, where the user falls silent
    stop = next(e for e in stored.word_ends if e >= 7)
    cut = episode.user_lines[0]
    assert cut.cut and cut.end == pytest.approx(min(t(stop), stored.duration_s))
    # the agent's last frame is 21 (stream); 5 quiet frames later, frame 27, the user resumes
    assert episode.events[3].t == t(27 - LEAD_FRAMES)
    assert episode.user_lines[1].text == cut.text and episode.user_lines[1].start == t(22)


def test_a_user_that_finishes_its_sentence_is_not_cut():
    user_plan = plan(one_line())
    axis = Conversation(user=fixed_user(finish_probability=(1.0, 1.0)))
    talk = range(LEAD_FRAMES + 2, LEAD_FRAMES + 17)
    episode, _, _ = run(make_env(user_plan, axis), lambda k: k in talk)
    assert "user_continues" in [kind for _, kind in events(episode)]
    assert not episode.user_lines[0].cut


def test_a_short_barge_in_during_the_pause_is_logged_and_the_turn_goes_on():
    parts = (Line("turn", "I was thinking that we could", STYLE), Line("turn", "go hiking.", STYLE))
    user_plan = plan(Turn(parts, pause_s=1.2))
    first = stored(user_plan, parts[0])
    F = first.frames
    talk = range(LEAD_FRAMES + F + 2, LEAD_FRAMES + F + 6)  # 4 frames, inside the 15-frame pause
    episode, info, _ = run(make_env(user_plan), lambda k: k in talk)
    assert events(episode)[1:4] == [
        (round(first.duration_s, 6), "user_pause"),
        (t(F + 2), "agent_barge_in"),
        (round(t(F + 15) + stored(user_plan, parts[1]).duration_s, 6), "user_turn_end"),
    ]
    assert episode.events[2].cause == "in the user's mid-turn pause"
    # the agent fell silent 9 frames before the pause's end: the user goes on as planned
    assert episode.user_lines[1].start == t(F + 15)
    assert info["metrics"]["agent_interruptions"] == 0.0  # a 0.32 s spurt is no barge-in


def test_the_user_waits_out_an_agent_still_talking_when_its_pause_ends():
    parts = (Line("turn", "I was thinking that we could", STYLE), Line("turn", "go hiking.", STYLE))
    user_plan = plan(Turn(parts, pause_s=0.8))
    F = line_frames(user_plan, parts[0])
    talk = range(LEAD_FRAMES + F + 2, LEAD_FRAMES + F + 30)  # runs 2.24 s, past the 10-frame pause
    episode, info, _ = run(make_env(user_plan), lambda k: k in talk)
    resume = next(e for e in episode.events if e.kind == "user_resume")
    assert resume.t == t(F + 30 + 5)
    assert info["metrics"]["agent_interruptions"] == 1.0
    assert info["reward_terms"]["barge_in"] == -1.0


def test_observations_are_the_users_audio_and_the_record_holds_it_bit_for_bit():
    user_plan = plan(one_line(), one_line("I like the sea."))
    talk = range(60, 80)
    episode, _, observations = run(make_env(user_plan), lambda k: k in talk)
    heard = observations[LEAD_FRAMES:].reshape(-1)
    assert np.array_equal(heard, episode.scenario.audio[: len(heard)])
    assert not observations[:LEAD_FRAMES].any()  # silent lead-in
    assert np.abs(heard).max() > 0.05


def test_the_same_seed_and_actions_give_the_same_episode_and_groups_share_their_user():
    axis = Conversation(max_duration_s=12.0)
    env = fdenv.FullDuplexVectorEnv(
        4, axis, group_size=2, autoreset_mode="Disabled", num_scenarios=4
    )
    first = play(RuleAgent(), env, seed=5)
    again = play(RuleAgent(), env, seed=5)
    for a, b in zip(first.episodes, again.episodes, strict=True):
        assert a.events == b.events and np.array_equal(a.scenario.audio, b.scenario.audio)
    # a group's two rollouts: the same plan, traits and seed, and the same agent: one episode
    for g in (0, 2):
        a, b = first.episodes[g], first.episodes[g + 1]
        assert a.scenario.source == b.scenario.source and a.events == b.events
    assert not env.group_inputs_shared


def test_rollouts_of_a_group_differ_only_through_the_agents_actions():
    env = fdenv.FullDuplexVectorEnv(
        2, Conversation(user=fixed_user()), group_size=2, voice=TextVoice(1), lead_in_s=0.4
    )
    env.reset(seed=0)
    frames = 0
    while frames < 200:
        actions = np.full((2, 9), PAD_ID, dtype=np.int64)
        actions[1, 0] = WORD if 20 < frames < 40 else PAD_ID  # env 1 talks over its user
        _, _, terminated, _, _ = env.step(actions)
        frames += 1
        if terminated.any():
            break
    a, b = env.episode(0), env.episode(1)
    assert a.scenario.source == b.scenario.source
    assert a.events[0] == b.events[0] and a.events != b.events


def test_single_and_vector_envs_agree():
    axis = Conversation(max_duration_s=10.0)
    single = fdenv.FullDuplexEnv(axis, num_scenarios=3)
    vector = fdenv.FullDuplexVectorEnv(1, axis, autoreset_mode="Disabled", num_scenarios=3)
    a = play(RuleAgent(), single, seed=9).episodes[0]
    b = play(RuleAgent(), vector, seed=9).episodes[0]
    assert a.events == b.events and np.array_equal(a.scenario.audio, b.scenario.audio)


def test_selectivity_plans_cover_the_four_overlaps_and_each_is_logged():
    axis = Selectivity()
    kinds = {axis.plan(np.random.default_rng(i)).extra["overlay"] for i in range(40)}
    assert kinds == {"backchannel", "side_talk", "background", "interruption"}
    env = fdenv.FullDuplexVectorEnv(8, "Selectivity", autoreset_mode="Disabled", num_scenarios=8)
    played = play(RuleAgent(), env, seed=0)
    logged = {e.kind for ep in played.episodes for e in ep.events}
    assert {"user_turn_start", "user_turn_end", "agent_response", "episode_end"} <= logged


def test_the_last_steps_info_holds_the_events_with_their_causes():
    _, info, _ = run(make_env(plan(one_line())), lambda k: False)
    assert info["events"][0] == {
        "t": 0.0,
        "kind": "user_turn_start",
        "cause": "turn 1",
        "turn": 0,
    }


class Broken(UserPolicy):
    def reprompt(self, context):
        raise KeyError("no such line")


def test_a_policy_that_raises_is_named_in_the_error():
    env = make_env(plan(one_line()), Conversation(user=fixed_user(), policy=Broken()))
    with pytest.raises(UserPolicyError, match=r"Broken\(\) raised in reprompt\(\): KeyError"):
        run(env, lambda k: False)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"answer_gap_s": (-0.1, 0.2)}, "must be >= 0"),
        ({"yield_after_s": (0.6, 0.2)}, "low <= high"),
        ({"finish_probability": (0.0, 1.5)}, r"must lie in \[0, 1\]"),
        ({"answer_gap_s": (0.4, 3.0)}, "must end before reprompt_after_s"),
        ({"max_reprompts": -1}, "max_reprompts must be an int >= 0"),
        ({"stop_s": float("nan")}, "finite"),
        ({"interrupt_after_s": 2.0}, r"range \(low, high\)"),
    ],
)
def test_impossible_knobs_are_refused_by_name(knobs, message):
    with pytest.raises(ValueError, match=message):
        UserConfig(**knobs)


def test_unknown_knobs_and_plans_without_turns_are_refused():
    with pytest.raises(ValueError, match="unknown user knob 'patience'"):
        UserConfig().replace(patience=3)
    with pytest.raises(ValueError, match="at least one user turn"):
        plan()
    with pytest.raises(ValueError, match="not a setting of Conversation"):
        get_axis("Conversation(user.patience=3)")
    with pytest.raises(ValueError, match="must be > 0"):
        Conversation(max_duration_s=0)


def test_knobs_are_set_by_name_on_a_command_line():
    axis = get_axis("Conversation(user.answer_gap_s=(0.2, 0.3), turns=(1, 1))")
    assert axis.user.answer_gap_s == (0.2, 0.3) and axis.turns == (1, 1)
    assert axis.user.reprompt_after_s == UserConfig().reprompt_after_s


def test_replay_and_closed_loop_axes_do_not_mix_and_take_no_acoustics():
    with pytest.raises(ValueError, match="mix replayed and closed-loop axes"):
        fdenv.FullDuplexEnv(["TurnTaking", "Conversation"])
    from fdenv.audio.acoustics import Acoustics

    with pytest.raises(ValueError, match="take none"):
        fdenv.FullDuplexEnv("Selectivity", acoustics=Acoustics())


def test_a_recorded_plan_without_its_store_is_refused():
    user_plan = plan(one_line())
    scenario = store_scenario(user_plan, "plan-0", "Conversation", {})
    scenario.plan = plan(one_line("Something else entirely."))
    with pytest.raises(ValueError, match="not made from this plan"):
        fdenv.FullDuplexEnv(Conversation(), [scenario])


def test_an_llm_user_says_what_the_model_answers_at_turn_boundaries():
    replies = iter(["User: So what would you pack?", "END"])

    def script(call, body):
        return completion(next(replies))

    with chat_server(script) as server:
        client = ChatCompletionsJudge(server.url, "test-model", max_tokens=64)
        axis = Conversation(
            user=fixed_user(), policy=LLMUser(client, decode=lambda ids: "hi", max_turns=3)
        )
        first, second = one_line(), one_line("I like the sea.")
        F = line_frames(plan(first, second), first.parts[0])
        start = LEAD_FRAMES + F + 3
        talk = set(range(start, start + 15)) | set(range(start + 60, start + 75))
        episode, _, _ = run(make_env(plan(first, second), axis), lambda k: k in talk)
        asked = server.bodies[0]["messages"][1]["content"]
    assert [x.text for x in episode.user_lines][:2] == [first.text, "So what would you pack?"]
    assert first.text in asked and "Assistant: hi" in asked
    assert server.calls == 2  # one call per turn boundary, never per frame
    assert episode.events[-1].kind == "episode_end"


def test_an_llm_user_falls_back_to_the_plan_when_the_server_fails():
    with chat_server(lambda call, body: Reply(400, b"{}")) as server:
        client = ChatCompletionsJudge(server.url, "test-model", max_retries=0)
        policy = LLMUser(client)
        axis = Conversation(user=fixed_user(), policy=policy)
        first, second = one_line(), one_line("I like the sea.")
        F = line_frames(plan(first, second), first.parts[0])
        start = LEAD_FRAMES + F + 3
        episode, _, _ = run(make_env(plan(first, second), axis), lambda k: start <= k < start + 15)
    assert [x.text for x in episode.user_lines][:2] == [first.text, second.text]
    assert policy.fallbacks == 1 and client.stats.failures["http_400"] == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('User: "How far is it?"\nAssistant: ...', "How far is it?"),
        ("END.", "END"),
        ("   ", None),
        ("...", None),
        (None, None),
    ],
)
def test_llm_replies_are_cleaned_to_one_turn(reply, expected):
    assert clean(reply) == expected


def test_the_guide_names_every_event_kind():
    from pathlib import Path

    from fdenv.user.events import EVENT_KINDS

    guide = (Path(__file__).resolve().parents[1] / "docs" / "closed_loop.md").read_text()
    assert [kind for kind in EVENT_KINDS if f"`{kind}`" not in guide] == []


def test_a_recorded_episode_keeps_its_events_and_the_users_lines(tmp_path):
    import json

    from fdenv.wrappers import RecordEpisode

    env = RecordEpisode(make_env(plan(one_line())), tmp_path)
    run(env, lambda k: False)
    record = json.loads((tmp_path / "episode-0000.json").read_text())
    assert [e["kind"] for e in record["events"]][:3] == [
        "user_turn_start",
        "user_turn_end",
        "user_reprompt",
    ]
    assert record["user_lines"][0]["text"] == "Where did you grow up as a kid?"
    assert (tmp_path / "episode-0000.png").stat().st_size > 0


def test_a_yield_threshold_longer_than_every_turn_is_refused():
    axis = Conversation(user=fixed_user(yield_after_s=(2.0, 2.0), reprompt_after_s=(3.0, 3.0)))
    with pytest.raises(ValueError, match="the user could never yield"):
        make_env(plan(one_line("Hi there.")), axis)


def test_the_user_decides_once_per_line_when_talked_over():
    """The agent talks exactly the 5 frames that make the user decide, then stops: the user
    yields once (no second decision while the overlap count stays at its threshold)."""
    user_plan = plan(one_line("Could you tell me how long the drive to the coast takes?"))
    talk = range(LEAD_FRAMES + 2, LEAD_FRAMES + 7)
    episode, _, _ = run(make_env(user_plan), lambda k: k in talk)
    kinds = [kind for _, kind in events(episode)]
    assert kinds.count("user_yield") + kinds.count("user_continues") == 1


def test_a_user_cut_off_by_an_agent_already_quiet_resumes_at_once():
    """The agent stops before the user's cut line ends: when the line stops, the agent has
    been quiet longer than the gap, so the user takes its turn up again on the next frame."""
    turn = one_line("Supercalifragilisticexpialidocious is what she said.")
    user_plan = plan(turn)
    first_word = stored(user_plan, turn.parts[0]).word_ends[0]
    assert first_word >= 12  # the long first word outlasts the agent's 5 frames and the gap
    talk = range(LEAD_FRAMES + 1, LEAD_FRAMES + 6)
    episode, _, _ = run(make_env(user_plan), lambda k: k in talk)
    cut, again = episode.user_lines[0], episode.user_lines[1]
    resume = next(e for e in episode.events if e.kind == "user_resume")
    assert cut.cut and again.text == cut.text
    assert resume.t == again.start == t(first_word + 1)


def test_an_agent_that_stops_during_the_interruption_is_logged_as_yielding():
    question = Line("turn", "Where did you grow up as a kid?", STYLE)
    cut_in = Line("interruption", "Wait, what do you mean?", STYLE)
    user_plan = plan(Turn((question,), overlay=cut_in, overlay_after_s=0.4))
    F = line_frames(user_plan, question)
    start = LEAD_FRAMES + F + 3  # answers 20 frames: heard as an answer at its 13th frame
    axis = Selectivity(user=fixed_user())
    episode, info, _ = run(make_env(user_plan, axis), lambda k: start <= k < start + 20)
    kinds = events(episode)
    interruption = next(t for t, kind in kinds if kind == "user_interruption")
    # the overlap comes once the answer is heard (13 frames) and 5 frames are due: frame 14
    assert interruption == t(F + 3 + 14)
    assert (t(F + 3 + 20), "agent_yield") in kinds  # the first silent frame
    assert info["reward_terms"]["selectivity"] == 1.0


class Chatty(UserPolicy):
    """Makes up every turn after the first: ten lines the plan does not hold."""

    def next_turn(self, context):
        if context.turns_taken >= 10:
            return None
        return Turn((Line("turn", f"Here is made up line number {context.turns_taken}.", STYLE),))


def test_made_up_lines_reuse_bank_slots_however_many_there_are():
    axis = Conversation(user=fixed_user(), policy=Chatty(), max_duration_s=60.0)
    env = fdenv.FullDuplexVectorEnv(
        2, axis, autoreset_mode="Disabled", lead_in_s=0.4, num_scenarios=1
    )
    played = play(RuleAgent(), env, seed=0)
    said = [x.text for x in played.episodes[0].user_lines if x.kind == "turn"]
    assert len(set(said)) >= 8  # many made-up lines, each played from a bank slot
    assert len(env._engine._bank._envs) <= 2 * env.num_envs


@pytest.mark.slow
def test_closed_loop_envs_are_torchrl_envs():
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    env = GymEnv("FullDuplex-Selectivity-v0", categorical_action_encoding=True, lead_in_s=0.4)
    check_env_specs(env)
    assert env.rollout(30)["next", "observation"].shape == (30, 1920)
