"""Interaction metrics and closed-loop reward terms, specified with hand-computed numbers.

Covers the pure functions of :mod:`fdenv.interaction` and the reward terms built on them
(:func:`fdenv.axes.conversation.answer_term`, :func:`~fdenv.axes.conversation.closed_loop_terms`,
:func:`fdenv.axes.selectivity.selectivity_term`). Every input is built by hand: the user's
:class:`PlayedLine`s, its :class:`UserEvent`s and the agent's speech intervals, so each expected
number can be checked on paper (the arithmetic is in the comments).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fdenv.axes.conversation import answer_term, closed_loop_terms
from fdenv.axes.selectivity import selectivity_term
from fdenv.constants import FRAME_S, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.interaction import (
    ANSWER_WINDOW_S,
    METRIC_DIRECTIONS,
    SELECTIVITY_WINDOW_S,
    STOP_GAP_S,
    Overlap,
    answer_latencies,
    barge_ins,
    interaction_metrics,
    overlap_ratio,
    overlaps,
    talk_spurts,
    user_floor,
    user_turn_ends,
    yielded,
)
from fdenv.scenario import Scenario
from fdenv.timeline import Interval
from fdenv.user.events import PlayedLine, UserEvent

INF = float("inf")


def said(kind: str, start: float, end: float, turn: int = -1, cut: bool = False) -> PlayedLine:
    """A line the user said from ``start`` to ``end`` (the text does not matter here)."""
    return PlayedLine(kind, f"<{kind}>", start, end, cut, turn)


def event(t: float, kind: str, turn: int = -1) -> UserEvent:
    return UserEvent(t, kind, "hand-built", turn)


def speech(*pairs: tuple[float, float]) -> list[Interval]:
    """The agent's speech intervals."""
    return [Interval(a, b) for a, b in pairs]


def episode(
    duration: float,
    lines: list[PlayedLine],
    agent: list[Interval],
    events: list[UserEvent] | None = None,
) -> Episode:
    """A closed-loop episode of ``duration`` seconds with no lead-in: only the user's lines, its
    events and the agent's speech matter to the terms under test."""
    frames = round(duration / FRAME_S)
    scenario = Scenario(
        id="hand-built",
        axis="Conversation",
        audio=np.zeros(round(duration * SAMPLE_RATE), np.float32),
        user_speech=[],
    )
    return Episode(
        scenario=scenario,
        lead_in_s=0.0,
        agent_speaking=np.zeros(frames, bool),
        text_tokens=np.zeros(frames, np.int64),
        agent_speech=agent,
        events=events or [],
        user_lines=lines,
    )


# --- talk_spurts ------------------------------------------------------------------------------


def test_constants_are_the_documented_windows():
    """The numbers below are computed with these windows; a change must revisit them."""
    assert (STOP_GAP_S, ANSWER_WINDOW_S, SELECTIVITY_WINDOW_S) == (0.24, 2.0, 1.0)


def test_talk_spurts_join_a_breath():
    """A 0.2 s gap (< 0.24 s) between two words is a breath, not a stop: one spurt 0-2 s.
    Unsorted input is sorted first."""
    assert talk_spurts(speech((1.2, 2.0), (0.0, 1.0))) == [Interval(0.0, 2.0)]


def test_talk_spurts_split_at_a_silence_longer_than_the_stop_gap():
    """A 0.25 s gap (1.0 -> 1.25, > 0.24 s) is a stop: two spurts."""
    assert talk_spurts(speech((0.0, 1.0), (1.25, 2.0))) == [
        Interval(0.0, 1.0),
        Interval(1.25, 2.0),
    ]


def test_talk_spurts_split_at_a_silence_of_exactly_the_stop_gap():
    """0.74 - 0.5 == 0.24 exactly in floats: a silence as long as STOP_GAP_S ends the spurt."""
    assert STOP_GAP_S == 0.74 - 0.5  # the gap is exactly the stop gap
    assert talk_spurts(speech((0.0, 0.5), (0.74, 1.0))) == [
        Interval(0.0, 0.5),
        Interval(0.74, 1.0),
    ]


# --- user_turn_ends ---------------------------------------------------------------------------


def test_a_two_part_turn_ends_after_its_second_part():
    """Turn 0 is said in two parts (0-1 s, pause, 2-3 s): it ends at 3 s, when turn 1 starts
    at 5 s is the next start; turn 1 is the last line, so its next start is inf."""
    lines = [said("turn", 0.0, 1.0, 0), said("turn", 2.0, 3.0, 0), said("turn", 5.0, 6.0, 1)]
    assert user_turn_ends(lines) == [(3.0, 5.0), (6.0, INF)]


def test_a_cut_line_does_not_end_a_turn():
    """The user trails off at 1 s (cut) and says the turn again 3-4 s: one end, at 4 s."""
    lines = [said("turn", 0.0, 1.0, 0, cut=True), said("turn", 3.0, 4.0, 0)]
    assert user_turn_ends(lines) == [(4.0, INF)]


def test_a_reprompt_is_not_a_turn_but_is_the_next_start():
    """Turn 0-1 s, re-prompt 4-5 s: the turn ends at 1 s and the user next spoke at 4 s; the
    re-prompt is the user asking again, so it adds no end of its own."""
    lines = [said("turn", 0.0, 1.0, 0), said("reprompt", 4.0, 5.0, 0)]
    assert user_turn_ends(lines) == [(1.0, 4.0)]


def test_an_interruption_ends_a_turn():
    """Turn 0-1 s, interruption 3-3.5 s: both are turns said to their end."""
    lines = [said("turn", 0.0, 1.0, 0), said("interruption", 3.0, 3.5, 1)]
    assert user_turn_ends(lines) == [(1.0, 3.0), (3.5, INF)]


def test_background_speech_is_not_the_user_speaking_again():
    """Another person's speech at 1.5 s does not count as the user's next start (4 s)."""
    lines = [said("turn", 0.0, 1.0, 0), said("background", 1.5, 2.5), said("turn", 4.0, 5.0, 1)]
    assert user_turn_ends(lines) == [(1.0, 4.0), (5.0, INF)]


# --- answer_latencies -------------------------------------------------------------------------


def test_answer_latencies_early_start_then_late_onset_then_after_the_end():
    """Turn A ends at 2 s while the agent talks 1.5-3 s: it started 0.5 s early -> 0.5 (the
    paper's |start - end|). Turn B ends at 6 s, the agent starts at 6.5 s before the user's next
    line (9 s) -> 0.5. Turn C ends at 10 s, nothing follows, the agent starts at 12 s -> 2.0."""
    lines = [said("turn", 0.0, 2.0, 0), said("turn", 5.0, 6.0, 1), said("turn", 9.0, 10.0, 2)]
    agent = speech((1.5, 3.0), (6.5, 8.0), (12.0, 13.5))
    assert answer_latencies(lines, agent) == pytest.approx([0.5, 0.5, 2.0])


def test_a_backchannel_answers_nothing():
    """Turn ends at 2 s; the agent says mm-hmm 2.2-2.7 s (0.5 s, a backchannel), then answers
    3.0-4.5 s before the user speaks again at 6 s -> latency 1.0, from the real answer."""
    lines = [said("turn", 0.0, 2.0, 0), said("turn", 6.0, 7.0, 1)]
    agent = speech((2.2, 2.7), (3.0, 4.5))
    assert answer_latencies(lines, agent)[0] == pytest.approx(1.0)


def test_answer_latency_sees_through_a_breath():
    """The agent's 1.9-2.1 s breath (0.2 s < 0.24 s) is inside one spurt 1-3 s, which started
    1 s before the turn ended at 2 s: 1.0, not an onset at 2.1 s (0.1)."""
    lines = [said("turn", 0.0, 2.0, 0)]
    assert answer_latencies(lines, speech((1.0, 1.9), (2.1, 3.0))) == pytest.approx([1.0])


def test_an_answer_after_the_user_spoke_again_is_none():
    """Turn ends at 1 s, the user re-prompts at 4 s and the agent only starts at 5.5 s: the turn
    was not answered before the user spoke again -> None."""
    lines = [said("turn", 0.0, 1.0, 0), said("reprompt", 4.0, 5.0, 0)]
    assert answer_latencies(lines, speech((5.5, 7.0))) == [None]


def test_a_silent_agent_answers_nothing():
    lines = [said("turn", 0.0, 1.0, 0), said("turn", 3.0, 4.0, 1)]
    assert answer_latencies(lines, []) == [None, None]


# --- user_floor -------------------------------------------------------------------------------


def test_user_floor_spans_a_mid_turn_pause():
    """Parts 0-1 s and 2.5-3.5 s with a user_pause at 1 s: the pause 1-2.5 s holds the floor,
    so the floor is one span 0-3.5 s. A backchannel and background speech do not hold it."""
    lines = [
        said("turn", 0.0, 1.0, 0),
        said("turn", 2.5, 3.5, 0),
        said("backchannel", 5.0, 5.3, 0),
        said("background", 6.0, 7.0),
    ]
    assert user_floor(lines, [event(1.0, "user_pause", 0)]) == [Interval(0.0, 3.5)]


def test_user_floor_holds_turns_reprompts_and_interruptions_only():
    lines = [
        said("turn", 0.0, 1.0, 0),
        said("reprompt", 4.0, 5.0, 0),
        said("interruption", 8.0, 9.0, 1),
        said("backchannel", 10.0, 10.3, 1),
        said("side_talk", 11.0, 12.0, 1),
    ]
    assert user_floor(lines, []) == [Interval(0.0, 1.0), Interval(4.0, 5.0), Interval(8.0, 9.0)]


def test_a_pause_with_nothing_said_after_adds_no_floor():
    """A user_pause at 2 s after which the user never spoke again has no end: no floor."""
    lines = [said("turn", 0.0, 2.0, 0)]
    assert user_floor(lines, [event(2.0, "user_pause", 0)]) == [Interval(0.0, 2.0)]


# --- barge_ins --------------------------------------------------------------------------------

# Turn 0 in two parts: 0-1 s, a pause 1-3 s (user_pause at 1 s), 3-4 s. The floor is 0-4 s.
PAUSED_TURN = [said("turn", 0.0, 1.0, 0), said("turn", 3.0, 4.0, 0)]
PAUSE = [event(1.0, "user_pause", 0)]


def test_a_long_spurt_in_the_pause_is_a_barge_in():
    """The agent talks 1.5-3 s (1.5 s > 1 s) starting in the pause: one barge-in."""
    assert barge_ins(PAUSED_TURN, PAUSE, speech((1.5, 3.0))) == 1


def test_a_backchannel_in_the_pause_is_not_a_barge_in():
    """A 0.5 s "mm-hmm" (1.5-2 s) in the pause is a backchannel, not a barge-in."""
    assert barge_ins(PAUSED_TURN, PAUSE, speech((1.5, 2.0))) == 0


def test_a_spurt_of_exactly_the_backchannel_length_is_not_a_barge_in():
    """Only spurts *longer* than MAX_BACKCHANNEL_S (1 s) count: 1.5-2.5 s is exactly 1 s."""
    assert barge_ins(PAUSED_TURN, PAUSE, speech((1.5, 2.5))) == 0


def test_an_answer_after_the_turn_is_not_a_barge_in():
    """An onset at 4 s, where the floor 0-4 s ends (half-open), is an answer."""
    assert barge_ins(PAUSED_TURN, PAUSE, speech((4.0, 7.0))) == 0


def test_barge_ins_count_each_long_onset_in_the_floor():
    """0.2-1.5 s (1.3 s, in the first part) and 1.8-3.5 s (1.7 s, in the pause; 0.3 s gap so a
    separate spurt) count; 3.8-4.2 s (0.4 s) does not: 2."""
    agent = speech((0.2, 1.5), (1.8, 3.5), (3.8, 4.2))
    assert barge_ins(PAUSED_TURN, PAUSE, agent) == 2


# --- overlaps and yielded ---------------------------------------------------------------------


def test_an_interruption_the_agent_yields_to():
    """The agent talks 0-3 s; the user cuts in at 2.2 s; the agent stops 0.8 s later: within
    the 2 s window, not within 0.5 s."""
    lines = [said("interruption", 2.2, 3.5, 1)]
    (found,) = overlaps(lines, speech((0.0, 3.0)), episode_end=10.0)
    assert (found.kind, found.start, found.agent_talking) == ("interruption", 2.2, True)
    assert found.stop_latency == pytest.approx(0.8)
    assert yielded(found, ANSWER_WINDOW_S)
    assert not yielded(found, 0.5)


def test_a_stop_latency_of_exactly_the_window_is_a_yield():
    """Spurt 0-3 s (a 0.1 s breath at 1.5 s is inside it); cut-in at 1 s; stop 2 s later:
    "within 2 s" includes 2 s."""
    lines = [said("interruption", 1.0, 2.0, 1)]
    (found,) = overlaps(lines, speech((0.0, 1.5), (1.6, 3.0)), episode_end=10.0)
    assert found.stop_latency == 2.0
    assert yielded(found, ANSWER_WINDOW_S)


def test_a_spurt_that_lasts_to_the_episode_end_never_stopped():
    """The agent talks 0-10 s and the episode ends at 10 s: no stop latency, not a yield for
    any window."""
    lines = [said("backchannel", 2.0, 2.4, 0)]
    (found,) = overlaps(lines, speech((0.0, 10.0)), episode_end=10.0)
    assert found == Overlap("backchannel", 2.0, True, None)
    assert not yielded(found, SELECTIVITY_WINDOW_S)
    assert not yielded(found, ANSWER_WINDOW_S)


def test_an_overlap_with_a_silent_agent_has_nothing_to_yield():
    """Side talk at 5 s while the agent is silent (it talked 0-3 s): not talking, latency 0,
    which counts as yielded."""
    lines = [said("side_talk", 5.0, 6.0, 0)]
    (found,) = overlaps(lines, speech((0.0, 3.0)), episode_end=10.0)
    assert found == Overlap("side_talk", 5.0, False, 0.0)
    assert yielded(found, SELECTIVITY_WINDOW_S)


def test_turns_and_reprompts_are_not_overlaps():
    """Only interruptions, backchannels, side talk and background speech are overlaps."""
    lines = [
        said("turn", 0.0, 1.0, 0),
        said("reprompt", 1.5, 2.0, 0),
        said("background", 2.5, 3.0),
        said("interruption", 4.0, 5.0, 1),
    ]
    found = overlaps(lines, speech((0.0, 6.0)), episode_end=10.0)
    assert [o.kind for o in found] == ["background", "interruption"]


# --- overlap_ratio ----------------------------------------------------------------------------


def test_overlap_ratio_is_both_over_either():
    """User 0-2 s, agent 1-3 s: both talk 1 s (1-2), either talks 3 s (0-3) -> 1/3."""
    assert overlap_ratio([said("turn", 0.0, 2.0, 0)], speech((1.0, 3.0))) == pytest.approx(1 / 3)


def test_overlap_ratio_ignores_background_and_double_counts_nothing():
    """Background speech 0-5 s is not the user's; agent intervals 1-3 and 2-3 overlap each
    other but count once: still 1/3."""
    lines = [said("turn", 0.0, 2.0, 0), said("background", 0.0, 5.0)]
    assert overlap_ratio(lines, speech((1.0, 3.0), (2.0, 3.0))) == pytest.approx(1 / 3)


def test_overlap_ratio_is_zero_when_nobody_talks():
    assert overlap_ratio([], []) == 0.0
    assert overlap_ratio([said("background", 0.0, 5.0)], []) == 0.0


# --- interaction_metrics on one hand-built conversation ---------------------------------------

# A 15 s conversation:
#   user  turn 0   0-2 s, pause (user_pause at 2 s), 3-4 s
#   agent          2.2-3.5 s: 1.3 s starting in the pause -> a barge-in
#   agent          4.25-6.75 s: the answer to turn 0, 0.25 s after it ended (next user line: 5 s)
#   user  backchannel 5-5.4 s: the agent talks 1.75 s on (> 1 s) -> talked through
#   user  interruption (turn 1) 6-7 s: the agent stops 0.75 s in -> yielded; at its end (7 s)
#                  the agent is silent and says nothing before the user's next line (10 s)
#   user  re-prompt 10-11 s (user_reprompt at 10 s)
#   agent          11.5-12.5 s
#   other background 12-12.5 s: the agent stops 0.5 s in (<= 1 s) -> not talked through
CONVERSATION_LINES = [
    said("turn", 0.0, 2.0, 0),
    said("turn", 3.0, 4.0, 0),
    said("backchannel", 5.0, 5.4, 0),
    said("interruption", 6.0, 7.0, 1),
    said("reprompt", 10.0, 11.0, 1),
    said("background", 12.0, 12.5),
]
CONVERSATION_EVENTS = [event(2.0, "user_pause", 0), event(10.0, "user_reprompt", 1)]
CONVERSATION_AGENT = speech((2.2, 3.5), (4.25, 6.75), (11.5, 12.5))


def test_interaction_metrics_of_a_hand_built_conversation():
    """Each metric by hand (see the timeline above):
    - answer latencies [0.25, None]: answer_latency 0.25, response_rate 1/2;
    - one barge-in over 2 turns (0 and 1): agent_interruptions 0.5;
    - the interruption was yielded in 0.75 s: yield_rate 1, yield_latency 0.75;
    - the backchannel was talked through: bc_selectivity 1; the background speech was not:
      background_selectivity 0; no side talk: NaN;
    - one re-prompt;
    - overlap_ratio: user (no background) 0-2, 3-4, 5-5.4, 6-7, 10-11; agent 2.2-3.5,
      4.25-6.75, 11.5-12.5. Both: 3-3.5 (0.5) + 5-5.4 (0.4) + 6-6.75 (0.75) = 1.65. Either:
      0-2 (2) + 2.2-4 (1.8) + 4.25-7 (2.75) + 10-11 (1) + 11.5-12.5 (1) = 8.55. 1.65/8.55 = 11/57.
    """
    metrics = interaction_metrics(
        CONVERSATION_LINES, CONVERSATION_EVENTS, CONVERSATION_AGENT, episode_end=15.0
    )
    assert set(metrics) == set(METRIC_DIRECTIONS)
    assert math.isnan(metrics.pop("side_talk_selectivity"))
    assert metrics == pytest.approx(
        {
            "answer_latency": 0.25,
            "response_rate": 0.5,
            "agent_interruptions": 0.5,
            "yield_rate": 1.0,
            "yield_latency": 0.75,
            "bc_selectivity": 1.0,
            "background_selectivity": 0.0,
            "reprompts": 1.0,
            "overlap_ratio": 11 / 57,
        }
    )


def test_interaction_metrics_of_an_empty_episode_are_nan_where_nothing_is_measured():
    """No user lines, no agent speech: every rate is NaN; reprompts 0 and overlap_ratio 0."""
    metrics = interaction_metrics([], [], [], episode_end=5.0)
    counted = {"reprompts": 0.0, "overlap_ratio": 0.0}
    for name, value in metrics.items():
        if name in counted:
            assert value == counted[name], name
        else:
            assert math.isnan(value), name


def test_selectivity_metrics_skip_overlaps_that_found_the_agent_silent():
    """Two backchannels: at 1 s the agent (0-3 s) talks 2 s on -> talked through; at 5 s it is
    silent -> not counted. bc_selectivity = 1/1, not 1/2."""
    lines = [said("backchannel", 1.0, 1.3, 0), said("backchannel", 5.0, 5.3, 0)]
    metrics = interaction_metrics(lines, [], speech((0.0, 3.0)), episode_end=10.0)
    assert metrics["bc_selectivity"] == 1.0


def test_an_interruption_not_yielded_counts_against_the_yield_rate_only():
    """Interruptions at 1 s (agent 0-2 s stops 1 s in) and at 4 s (agent 3-8 s talks 4 s on):
    yield_rate 1/2, yield_latency the mean over the yielded one only: 1.0."""
    lines = [said("interruption", 1.0, 1.5, 1), said("interruption", 4.0, 4.5, 2)]
    metrics = interaction_metrics(lines, [], speech((0.0, 2.0), (3.0, 8.0)), episode_end=10.0)
    assert metrics["yield_rate"] == 0.5
    assert metrics["yield_latency"] == 1.0


# --- answer_term ------------------------------------------------------------------------------


def test_answer_term_scores_latency_within_the_two_second_window():
    """1 - min(L, 2) / 2 per turn: 0 -> 1, 1 -> 0.5, None -> 0, 3 -> 0 (capped);
    mean of [1, 0.5, 0, 0] = 0.375."""
    assert answer_term([0.0, 1.0, None, 3.0]) == 0.375


def test_answer_term_without_turns_is_zero():
    assert answer_term([]) == 0.0


# --- closed_loop_terms ------------------------------------------------------------------------


def test_closed_loop_terms_of_the_hand_built_conversation():
    """The conversation above without the background speech (a Conversation has none):
    - answer: latencies [0.25, None] -> mean(1 - 0.125, 0) = 0.4375;
    - barge_in: -min(1, 1 barge-in / 2 turns) = -0.5;
    - yield: the one interruption was yielded -> 0;
    - talk_through: the one backchannel was talked through -> 0."""
    lines = [x for x in CONVERSATION_LINES if x.kind != "background"]
    ep = episode(15.0, lines, CONVERSATION_AGENT, CONVERSATION_EVENTS)
    assert closed_loop_terms(ep) == pytest.approx(
        {"answer": 0.4375, "barge_in": -0.5, "yield": 0.0, "talk_through": 0.0}
    )


def test_closed_loop_terms_punish_stopping_for_a_backchannel_and_talking_over_a_cut_in():
    """Turn 0-1 s answered at 1.5 s (latency 0.5 -> 0.75). Backchannels at 2 s (agent talks on
    to 4 s: 2 s, kept) and at 5 s (agent 4.5-5.5 s stops 0.5 s in: stopped): half stopped ->
    talk_through -0.5. Interruption 7-8 s; the agent (6.5-9.5 s) talks 2.5 s on (> 2 s) ->
    yield -1; the spurt going at the interruption's end (8 s) began at 6.5 s: latency 1.5 ->
    0.25, so answer = mean(0.75, 0.25) = 0.5. No barge-in (onsets 1.5, 4.5, 6.5 s are outside
    the floor) -> 0."""
    lines = [
        said("turn", 0.0, 1.0, 0),
        said("backchannel", 2.0, 2.3, 0),
        said("backchannel", 5.0, 5.3, 0),
        said("interruption", 7.0, 8.0, 1),
    ]
    agent = speech((1.5, 4.0), (4.5, 5.5), (6.5, 9.5))
    terms = closed_loop_terms(episode(12.0, lines, agent))
    assert terms == pytest.approx(
        {"answer": 0.5, "barge_in": 0.0, "yield": -1.0, "talk_through": -0.5}
    )


def test_closed_loop_terms_clip_agent_speech_to_the_episode():
    """The agent talks from the lead-in (-1 s) to past the episode's end (8 s > 6 s). Clipped to
    0-6 s it never stopped for the cut-in at 3 s -> yield -1; its one spurt began at 0 s, 1 s
    before the first turn ended (0.5) and 4 s before the second (0) -> answer 0.25; its only
    onset (0 s, the clip) is in the turn 0-1 s and lasts 6 s -> one barge-in over 2 turns ->
    -0.5."""
    lines = [said("turn", 0.0, 1.0, 0), said("interruption", 3.0, 4.0, 1)]
    terms = closed_loop_terms(episode(6.0, lines, speech((-1.0, 8.0))))
    assert terms == pytest.approx(
        {"answer": 0.25, "barge_in": -0.5, "yield": -1.0, "talk_through": 0.0}
    )


def test_closed_loop_terms_with_nothing_to_measure_are_zero():
    terms = closed_loop_terms(episode(5.0, [], []))
    assert terms == {"answer": 0.0, "barge_in": 0.0, "yield": 0.0, "talk_through": 0.0}


def test_talk_through_counts_side_talk_too():
    """Side talk at 1 s that the agent (0-1.5 s) stops for 0.5 s in: an overlap to talk
    through, not met -> talk_through = -1/1."""
    lines = [said("side_talk", 1.0, 2.0, 0)]
    assert closed_loop_terms(episode(5.0, lines, speech((0.0, 1.5))))["talk_through"] == -1.0


@pytest.mark.parametrize("kind", ["backchannel", "side_talk", "background"])
def test_a_talk_through_overlap_that_found_the_agent_silent_is_not_talked_through(kind):
    """The agent spoke 2.5-3 s and the overlap came at 3.5 s: it talked through nothing: -1."""
    lines = [QUESTION, said(kind, 3.5, 4.5)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 3.0)))) == -1.0


# --- selectivity_term -------------------------------------------------------------------------

QUESTION = said("turn", 0.0, 2.0, 0)
"""The Selectivity axis's one question; the agent answers from 2.5 s and the overlap comes at
3.5 s, 1 s into the answer."""


@pytest.mark.parametrize("kind", ["backchannel", "side_talk", "background"])
def test_stopping_within_a_second_for_talk_through_speech_is_wrong(kind):
    """Overlap at 3.5 s, the agent (2.5-4 s) stops 0.5 s in (<= 1 s): -1."""
    lines = [QUESTION, said(kind, 3.5, 4.5)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 4.0)))) == -1.0


@pytest.mark.parametrize("kind", ["backchannel", "side_talk", "background"])
def test_talking_through_talk_through_speech_is_right(kind):
    """Overlap at 3.5 s, the agent (2.5-5 s) talks 1.5 s on (> 1 s): +1."""
    lines = [QUESTION, said(kind, 3.5, 4.5)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 5.0)))) == 1.0


def test_talking_to_the_episode_end_through_a_backchannel_is_right():
    """The agent talks 2.5 s to past the end (12 s, clipped to 10 s): it never stopped: +1."""
    lines = [QUESTION, said("backchannel", 3.5, 3.9, 0)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 12.0)))) == 1.0


def test_stopping_for_an_interruption_within_two_seconds_is_right():
    """Interruption at 3.5 s, the agent (2.5-4.7 s) stops 1.2 s in (<= 2 s): +1."""
    lines = [QUESTION, said("interruption", 3.5, 4.5, 1)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 4.7)))) == 1.0


def test_talking_over_an_interruption_is_wrong():
    """Interruption at 3.5 s, the agent (2.5-6 s) talks 2.5 s on (> 2 s): -1; talking to the
    episode's end is as wrong."""
    lines = [QUESTION, said("interruption", 3.5, 4.5, 1)]
    assert selectivity_term(episode(10.0, lines, speech((2.5, 6.0)))) == -1.0
    assert selectivity_term(episode(10.0, lines, speech((2.5, 10.0)))) == -1.0


def test_no_overlap_at_all_is_wrong():
    """The agent said 0.5 s and stopped before the overlap could come: -1."""
    assert selectivity_term(episode(10.0, [QUESTION], speech((2.5, 3.0)))) == -1.0


# --- bad input --------------------------------------------------------------------------------


def test_an_unknown_event_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown event kind 'user_sneezes'"):
        UserEvent(1.0, "user_sneezes", "hand-built")
