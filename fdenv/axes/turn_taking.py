"""Turn-taking: answer promptly once the user's turn ends (R_turn).

Scenario: a user turn of at least ``min_utterance_s`` (short gaps inside), then silence in which
the partner would answer. ``turn_end`` marks the end of the user's turn.

Reward: -d, d = seconds between the turn end and the start of the agent's response, the first
agent utterance longer than ``min_response_s`` that is still going at the turn end or starts
after it. If there is none, d = the rest of the window after the turn end.

Choice left open by the paper: a response that began before the turn end (the agent talked over
the end of the user's turn) is charged ``|start - turn_end|``, so barging in early costs as much
as answering late, and a slight overlap costs little. Utterances that end before the turn end
are pauses handled badly, the pause axis' business; they are not the response.

So the paper's rule lets the agent talk in the user's mid-turn gaps for free, and answering
sooner pays: a policy that speaks at any silence earns more here, and carries that into the
pause and backchannel scenarios, where the benchmark counts it as take-overs. With
``mid_turn_rule`` set, the user's turn is judged as the pause axis judges a pause: a second
term, ``pause``, is -1 when the agent's speech before the turn end breaks that rule (see
:func:`fdenv.axes.pause_handling.pause_reward`), else 0. Off by default: the paper's rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fdenv.axes.base import Axis, AxisScore, JudgedExchange, user_utterances
from fdenv.axes.pause_handling import PauseRule, check_pause_rule, pause_reward
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.episode import Episode
from fdenv.fdbench import metrics as fdbench
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.segments import ConversationLabels, MiningRules, Segment, at_least, at_most
from fdenv.timeline import Interval, clip

TURN_GAP_S = 1.0
"""A silence longer than this between two user utterances separates turns (the paper's rule)."""


def response_delay(
    agent_speech: Sequence[Interval],
    turn_end: float,
    window_end: float,
    min_response_s: float = 1.0,
) -> tuple[float, bool]:
    """Returns (d, responded): the delay of the first response longer than ``min_response_s``."""
    for interval in sorted(agent_speech):
        if interval.end > turn_end and interval.duration > min_response_s:
            return abs(interval.start - turn_end), True
    return max(window_end - turn_end, 0.0), False


@dataclass(frozen=True)
class TurnTaking(Axis):
    name: ClassVar[str] = "TurnTaking"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "turn_end")
    metric_directions: ClassVar[Mapping[str, str]] = {"tor": "up", "latency": "down"}

    min_response_s: float = 1.0
    """Only agent utterances longer than this count as taking the turn (the paper's 1 s)."""
    min_utterance_s: float = 5.0
    """tau_min of the turn-taking axis."""
    max_gap_s: float = 0.4
    """Mining: longest silence between the user's turn and the partner's answer (the paper's)."""
    sentence_gap_s: tuple[float, float] = (0.2, 0.6)
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    response_window_s: tuple[float, float] = (5.0, 6.0)
    """Silence after the turn end, where the partner answered."""
    mid_turn_rule: PauseRule | None = None
    """``None``: the paper's rule (speech before the turn end costs nothing here); ``"interval"``
    or ``"span"``: a ``pause`` term of -1 when the agent's speech before the turn end breaks
    that pause rule (:class:`~fdenv.axes.pause_handling.PauseHandling`'s)."""
    mid_turn_max_speech_s: float = 1.0
    """With ``mid_turn_rule``: agent speech before the turn end longer than this breaks the rule
    (the pause axis' ``max_speech_s``, the paper's 1 s)."""

    def __post_init__(self) -> None:
        if self.mid_turn_rule is not None:
            check_pause_rule(self.mid_turn_rule)
        if not self.mid_turn_max_speech_s > 0:
            raise ValueError(f"mid_turn_max_speech_s must be > 0, got {self.mid_turn_max_speech_s}")

    def score(self, episode: Episode) -> AxisScore:
        scenario = episode.scenario
        assert scenario.turn_end is not None
        speech = episode.agent_speech_in_window()
        delay, responded = response_delay(
            speech, scenario.turn_end, scenario.duration, self.min_response_s
        )
        terms = {"turn": -delay}
        if self.mid_turn_rule is not None:
            during_turn = clip(speech, 0.0, scenario.turn_end)
            terms["pause"] = pause_reward(
                during_turn, self.mid_turn_max_speech_s, rule=self.mid_turn_rule
            )
        return AxisScore(terms=terms, stats={"latency_s": delay, "responded": float(responded)})

    def credit_start(self, scenario: Scenario) -> float:
        """The turn end: R_turn times the response from there, and what the agent says in the
        user's mid-turn gaps is the pause axis' business (the paper's rule leaves it free).
        With ``mid_turn_rule`` the reward judges those gaps too: the whole scenario."""
        assert scenario.turn_end is not None
        return 0.0 if self.mid_turn_rule is not None else scenario.turn_end

    def metrics(self, episode: Episode) -> dict[str, float]:
        """FD-Bench turn-taking TOR (higher is better) and latency from ``turn_end`` (NaN
        without a take-over)."""
        assert episode.scenario.turn_end is not None
        result = fdbench.turn_taking(fdbench.episode_words(episode), episode.scenario.turn_end)
        latency = float("nan") if result.latency is None else result.latency
        return {"tor": float(result.tor), "latency": latency}

    def judged_exchange(self, scenario: Scenario) -> JudgedExchange:
        """The user's turn is the run of user utterances that ends with the last one starting
        before ``turn_end``, consecutive utterances separated by at most ``TURN_GAP_S``; if that
        last one ends more than ``TURN_GAP_S`` before ``turn_end``, the transcripts miss the
        turn. The reply is what the model says from ``turn_end`` on."""
        end = scenario.turn_end
        assert end is not None
        before = [u for u in user_utterances(scenario) if u.start < end]
        if not before or end - before[-1].end > TURN_GAP_S:
            return JudgedExchange((), end)  # the transcripts miss the utterance ending the turn
        turn = before[-1:]
        for earlier in reversed(before[:-1]):
            if turn[0].start - earlier.end > TURN_GAP_S:
                break
            turn.insert(0, earlier)
        return JudgedExchange(tuple(turn), end)

    def reference_lines(self, scenario: Scenario, partner: ReferencePartner) -> list[AgentLine]:
        """A statement shortly after the turn end."""
        assert scenario.turn_end is not None
        text = partner.statement()
        return [AgentLine(text, partner.reply_at(scenario.turn_end))]

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """D_turn: a user utterance X then a partner utterance Y, both >= ``min_utterance_s``,
        with ``Y.start - X.end <= max_gap_s``.

        Y is the first partner utterance that starts after X starts and ends after X ends (a
        short overlap is a negative gap, as in natural turn exchanges; the partner's
        backchannels inside X are not a response). ``turn_end`` = X's end. Window:
        ``rules.lead_s`` before X to ``rules.response_s`` after its end; the user channel keeps
        whatever X said meanwhile (backchannels to Y's answer).
        """
        x, y = labels.channels[user], labels.channels[1 - user]
        segments = []
        for a in x.utterances:
            if not at_least(a.duration, self.min_utterance_s):
                continue
            later = (u for u in y.utterances if u.span.start > a.span.start)
            b = next((u for u in later if u.span.end > a.span.end), None)
            if b is None or not at_least(b.duration, self.min_utterance_s):
                continue
            if not at_most(b.span.start - a.span.end, self.max_gap_s):
                continue
            window = labels.window(a.span.start - rules.lead_s, a.span.end + rules.response_s)
            evidence = {"x": list(a.span), "y": list(b.span)}
            segments.append(
                Segment(self.name, user, window, turn_end=a.span.end, evidence=evidence)
            )
        return segments

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        bank = load_sentence_bank()
        track = new_track(rng, self.lead_silence_s)
        lines = [unmarked(s) for s in bank.statements]
        questions = [unmarked(s) for s in bank.questions]
        spans = track.say_until(
            self.min_utterance_s / 2,
            lambda: lines[rng.integers(len(lines))],
            lambda: rng.uniform(*self.sentence_gap_s),
        )
        track.silence(rng.uniform(*self.sentence_gap_s))
        spans.append(track.say(questions[rng.integers(len(questions))]))
        while spans[-1].end - spans[0].start < self.min_utterance_s:
            track.silence(rng.uniform(*self.sentence_gap_s))
            spans.append(track.say(lines[rng.integers(len(lines))]))
        turn_end = track.now
        track.silence(rng.uniform(*self.response_window_s))
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            turn_end=turn_end,
            transcripts=track.transcripts,
            source=synthetic_source(track),
        )
