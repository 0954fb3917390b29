"""User interruption: stop when the user cuts in, and answer once they are done (R_int).

Scenario: the user speaks (X), the partner answers (Y, silence in the user channel), the user
interrupts before the partner is done (X again, the labelled ``interruption``), and the partner
answers again. ``turn_end`` marks the end of the first user utterance.

Reward: -d, d = seconds from the END of the interruption to the start of the agent's next
speech. If there is none, d = the rest of the window after the interruption.

Choices left open by the paper: the agent's next speech is its first speech interval that starts
after the interruption begins and is still going at its end or starts later; speaking straight
through the interruption therefore is not a response (the agent never yielded). A restart
inside the interruption is charged ``|start - end|``, like the turn-taking axis.

Known weakness of the paper's rule: any speech counts, so a one-word backchannel right after the
interruption scores as a prompt answer, and talking over the interruption costs nothing as long
as the agent falls silent before it ends. ``min_response_s`` (0 = the paper) makes only longer
utterances count; the LLM-judge reward is the paper's answer to empty responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import numpy as np

from fdenv.axes.base import Axis, AxisScore, JudgedExchange, user_utterances
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.episode import Episode
from fdenv.fdbench import metrics as fdbench
from fdenv.scenario import Scenario
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.segments import ConversationLabels, MiningRules, Segment, at_least
from fdenv.timeline import Interval


def interruption_delay(
    agent_speech: list[Interval],
    interruption: Interval,
    window_end: float,
    min_response_s: float = 0.0,
) -> tuple[float, bool]:
    """Returns (d, responded) measured from the end of ``interruption``."""
    for interval in sorted(agent_speech):
        after = interval.start > interruption.start and interval.end > interruption.end
        if after and interval.duration > min_response_s:
            return abs(interval.start - interruption.end), True
    return max(window_end - interruption.end, 0.0), False


@dataclass(frozen=True)
class UserInterruption(Axis):
    name: ClassVar[str] = "UserInterruption"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech", "interruption")
    metric_directions: ClassVar[Mapping[str, str]] = {"tor": "up", "latency": "down"}

    min_response_s: float = 0.0
    """Agent speech must be longer than this to count as the answer (the paper: any speech)."""
    min_utterance_s: float = 3.0
    """tau_min of the interruption axis (both user utterances are at least this long)."""
    sentence_gap_s: tuple[float, float] = (0.2, 0.5)
    interrupt_after_s: tuple[float, float] = (1.8, 3.0)
    """Silence between the first user utterance and the interruption (the partner speaks)."""
    lead_silence_s: tuple[float, float] = (0.3, 0.8)
    response_window_s: tuple[float, float] = (4.0, 5.0)

    def score(self, episode: Episode) -> AxisScore:
        scenario = episode.scenario
        assert scenario.interruption is not None
        delay, responded = interruption_delay(
            episode.agent_speech_in_window(),
            scenario.interruption,
            scenario.duration,
            self.min_response_s,
        )
        return AxisScore(
            terms={"interruption": -delay},
            stats={"latency_s": delay, "responded": float(responded)},
        )

    def credit_start(self, scenario: Scenario) -> float:
        """The interruption's start: R_int's next speech is the first that starts after it."""
        assert scenario.interruption is not None
        return scenario.interruption.start

    def metrics(self, episode: Episode) -> dict[str, float]:
        """FD-Bench interruption TOR (higher is better) and latency from the interruption's
        end, words before it cut; the benchmark's judge score needs an LLM and is left out."""
        assert episode.scenario.interruption is not None
        words = fdbench.episode_words(episode)
        result = fdbench.user_interruption(words, episode.scenario.interruption.end)
        latency = float("nan") if result.latency is None else result.latency
        return {"tor": float(result.tor), "latency": latency}

    def judged_exchange(self, scenario: Scenario) -> JudgedExchange:
        """The user's turn is the user utterances overlapping the interruption; the reply is
        what the model says from the interruption's end on (FD-Bench cuts the output there)."""
        cut = scenario.interruption
        assert cut is not None
        turn = (u for u in user_utterances(scenario) if u.start < cut.end and u.end > cut.start)
        return JudgedExchange(tuple(turn), cut.end)

    def reference_lines(self, scenario: Scenario, partner: ReferencePartner) -> list[AgentLine]:
        """Two statements after the turn end, so that the answer is still going when the user
        cuts in, broken off shortly after the interruption starts; one statement after it."""
        cut = scenario.interruption
        assert scenario.turn_end is not None and cut is not None
        # the calls draw from the partner's generator: their order is part of the warm start
        stop = partner.stop_at(cut.start)
        answer = f"{partner.statement()} {partner.statement()}"
        first = AgentLine(answer, partner.reply_at(scenario.turn_end), stop)
        text = partner.statement()
        return [first, AgentLine(text, partner.reply_at(cut.end))]

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """D_int: user X1, partner Y1, user X2, partner Y2, all >= ``min_utterance_s``, where X2
        starts before Y1 ends.

        X1 and X2 are consecutive user utterances; Y1 is the first partner utterance starting
        after X1 starts, and it must still run when X1 ends and start before X2; Y2 is the first
        partner utterance starting after X2 starts. ``turn_end`` = X1's end, ``interruption`` =
        X2. Window: ``rules.lead_s`` before X1 to ``rules.response_s`` after X2 ends. The user
        channel is silent (or holds X's backchannels) while Y1 speaks in the source.
        """
        x, y = labels.channels[user], labels.channels[1 - user]
        tau = self.min_utterance_s
        segments = []
        for x1, x2 in pairwise(x.utterances):
            y1 = y.first_starting_after(x1.span.start)
            if y1 is None or not (x1.span.end < y1.span.end and y1.span.start < x2.span.start):
                continue
            if not x2.span.start < y1.span.end:
                continue
            y2 = y.first_starting_after(x2.span.start)
            if y2 is None or not at_least(min(u.duration for u in (x1, y1, x2, y2)), tau):
                continue
            window = labels.window(x1.span.start - rules.lead_s, x2.span.end + rules.response_s)
            matched = (("x", x1), ("y", y1), ("x2", x2), ("y2", y2))
            evidence = {key: list(u.span) for key, u in matched}
            segments.append(
                Segment(
                    self.name,
                    user,
                    window,
                    turn_end=x1.span.end,
                    interruption=x2.span,
                    evidence=evidence,
                )
            )
        return segments

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        bank = load_sentence_bank()
        questions = [unmarked(s) for s in bank.questions]
        interjections = list(bank.interruptions)
        track = new_track(rng, self.lead_silence_s)
        track.say_until(
            self.min_utterance_s,
            lambda: questions[rng.integers(len(questions))],
            lambda: rng.uniform(*self.sentence_gap_s),
        )
        turn_end = track.now
        track.silence(rng.uniform(*self.interrupt_after_s))
        texts = iter([interjections[rng.integers(len(interjections))]])
        spans = track.say_until(
            self.min_utterance_s,
            lambda: next(texts, None) or questions[rng.integers(len(questions))],
            lambda: rng.uniform(*self.sentence_gap_s),
        )
        interruption = Interval(spans[0].start, spans[-1].end)
        track.silence(rng.uniform(*self.response_window_s))
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            turn_end=turn_end,
            interruption=interruption,
            transcripts=track.transcripts,
            source=synthetic_source(track),
        )
