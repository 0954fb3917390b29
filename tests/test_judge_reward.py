"""The judge's reward term: transcripts from labels and text tokens, NaN for what is not scored,
and the term's path into decoupled normalisation against a real local server."""

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from chat_server import chat_server, completion
from conftest import noise_scenario

from agents.grpo.advantages import EPS, decoupled_advantages
from fdenv.axes import Axis, AxisScore, JudgedExchange, PauseHandling, TurnTaking
from fdenv.constants import EPAD_ID, FRAME_S, PAD_ID, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.judge.client import ChatCompletionsJudge, JudgeRequest
from fdenv.judge.reward import (
    JudgeTerms,
    judge_terms,
    response_audio,
    response_from_tokens,
    user_side,
)
from fdenv.registration import get_axis
from fdenv.scenario import Utterance
from fdenv.scenarios.synthetic import make_scenario
from fdenv.timeline import Interval

LEAD = 3.0


class WordDecoder:
    """Decodes id ``i`` to ``w<i>``: frame bookkeeping without a tokenizer's merging."""

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)

    def vocab_size(self) -> int:
        return 100


class ScriptedJudge:
    """Returns ``scores`` in order and records what it was asked."""

    def __init__(self, *scores: float | None, error: Exception | None = None) -> None:
        self.scores = list(scores)
        self.error = error
        self.asked: list[JudgeRequest] = []

    def score(self, requests):
        self.asked += requests
        if self.error is not None:
            raise self.error
        return [self.scores.pop(0) for _ in requests]


def turn_scenario(transcripts=True):
    """Context, a backchannel during the turn, a two-utterance turn ending at 7.04 s, the
    partner's real answer after it."""
    lines = [
        Utterance("user", "I went to Paris.", 0.2, 1.6),
        Utterance("partner", "Oh nice.", 2.0, 2.6),
        Utterance("user", "It rained all week.", 4.0, 5.2),
        Utterance("partner", "Mm-hmm.", 5.3, 5.6),
        Utterance("user", "But the food was great.", 5.8, 7.04),
        Utterance("partner", "Lucky you.", 7.5, 8.5),
    ]
    return noise_scenario(
        "TurnTaking",
        10.0,
        [(0.2, 1.6), (4.0, 5.2), (5.8, 7.04)],
        turn_end=7.04,
        transcripts=lines if transcripts else [],
    )


def interruption_scenario():
    lines = [
        Utterance("user", "Can you tell me about trains?", 0.5, 3.5),
        Utterance("partner", "Trains are fast and", 3.8, 5.2),
        Utterance("user", "Wait,", 5.0, 5.6),
        Utterance("user", "what about buses?", 5.9, 8.0),
    ]
    return noise_scenario(
        "UserInterruption",
        12.0,
        [(0.5, 3.5), (5.0, 5.6), (5.9, 8.0)],
        interruption=Interval(5.0, 8.0),
        transcripts=lines,
    )


def episode(scenario, tokens=None, audio=None, frames=None):
    n = frames or math.ceil((LEAD + scenario.duration) / FRAME_S)
    text = np.full(n, PAD_ID, dtype=np.int64)
    for frame, token in (tokens or {}).items():
        text[frame] = token
    return Episode(scenario, LEAD, np.zeros(n, dtype=bool), text, [], audio)


def frame_at(t):
    """The frame in which scenario time ``t`` falls (lead-in 3 s)."""
    return int((t + LEAD) / FRAME_S)


def side(scenario):
    """``user_side`` of the exchange that ``scenario``'s axis has judged."""
    return user_side(scenario, get_axis(scenario.axis).judged_exchange(scenario))


# ---------------------------------------------------------------------- the user's side


def test_turn_taking_context_and_turn():
    context, turn = side(turn_scenario())
    assert context == "User: I went to Paris.\nPartner: Oh nice."
    assert turn == "It rained all week. But the food was great."


@pytest.mark.parametrize(("second_start", "joined"), [(6.25, True), (6.375, False)])
def test_a_gap_of_more_than_a_second_separates_turns(second_start, joined):
    lines = [Utterance("user", "one", 4.0, 5.25), Utterance("user", "two", second_start, 7.0)]
    scenario = noise_scenario("TurnTaking", 9.0, [(4.0, 5.25)], turn_end=7.0, transcripts=lines)
    turn = TurnTaking().judged_exchange(scenario).user_turn
    assert [u.text for u in turn] == (["one", "two"] if joined else ["two"])


def test_interruption_context_and_turn():
    context, turn = side(interruption_scenario())
    assert context == "User: Can you tell me about trains?\nPartner: Trains are fast and"
    assert turn == "Wait, what about buses?"


def test_missing_transcripts_give_no_user_side():
    assert side(turn_scenario(transcripts=False)) is None
    # the utterance that ends the turn is missing: the one before it is not the turn
    lines = [Utterance("user", "earlier", 1.0, 2.0)]
    scenario = noise_scenario("TurnTaking", 6.0, [(1.0, 2.0)], turn_end=3.5, transcripts=lines)
    assert side(scenario) is None
    scenario.turn_end = 3.0  # a second after: still the turn
    assert side(scenario) == ("", "earlier")


def test_synthetic_scenarios_carry_the_transcripts_the_judge_needs():
    turn = make_scenario(get_axis("TurnTaking"), 0, 0)
    context, text = side(turn)
    assert context == "" and text == " ".join(u.text for u in turn.transcripts)
    cut = make_scenario(get_axis("UserInterruption"), 0, 0)
    context, text = side(cut)
    before = [u for u in cut.transcripts if u.end <= cut.interruption.start]
    during = [u for u in cut.transcripts if u.start >= cut.interruption.start]
    assert before and during
    assert context == "\n".join(f"User: {u.text}" for u in before)
    assert text == " ".join(u.text for u in during)


# ------------------------------------------------------------------------ the model's side


def test_reply_is_the_text_from_the_frame_of_the_turn_end_to_the_scenario_end():
    scenario = turn_scenario()
    assert frame_at(7.04) == 125 and frame_at(9.99) == 162
    tokens = {100: 10, 124: 11, 125: 12, 126: EPAD_ID, 127: 13, 150: 14, 162: 15, 163: 16}
    ep = episode(scenario, tokens, frames=170)
    assert response_from_tokens(ep, 7.04, WordDecoder()) == "w12 w13 w14 w15"


def test_interruption_reply_starts_at_the_frame_where_the_interruption_ends():
    scenario = interruption_scenario()
    assert frame_at(8.0) == 137
    ep = episode(scenario, {120: 1, 136: 2, 137: 4, 140: 5})
    assert response_from_tokens(ep, 8.0, WordDecoder()) == "w4 w5"


def test_reply_decodes_with_the_tiny_tokenizer():
    from agents.moshi.tokenizer import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    sentence = "we could maybe go hiking this weekend"
    ids = tokenizer.encode(sentence)
    first = frame_at(7.2)
    tokens = {first + 2 * k: i for k, i in enumerate(ids)}  # PADs between pieces
    tokens |= {first + 2 * k - 1: EPAD_ID for k in range(len(ids))}
    assert response_from_tokens(episode(turn_scenario(), tokens), 7.04, tokenizer) == sentence


@pytest.mark.parametrize("token", [100, -2])
def test_a_token_outside_the_vocabulary_is_a_configuration_error(token):
    ep = episode(turn_scenario(), {130: 5, 131: token})
    with pytest.raises(ValueError, match=rf"token {token} outside the .* vocabulary \[0, 100\)"):
        response_from_tokens(ep, 7.04, WordDecoder())


def test_reply_audio_is_cut_from_the_point_to_the_scenario_end():
    scenario = turn_scenario()
    total = round((LEAD + scenario.duration) * SAMPLE_RATE) + 1920
    audio = np.arange(total, dtype=np.float32)
    cut = response_audio(episode(scenario, audio=audio), 7.04)
    assert cut[0] == round(10.04 * SAMPLE_RATE) and cut[-1] == round(13.0 * SAMPLE_RATE) - 1
    with pytest.raises(ValueError, match="no agent audio"):
        response_audio(episode(scenario), 7.04)


# ------------------------------------------------------------------------------ judge_terms


def batch():
    """0: a reply; 1: silence; 2: an axis not judged; 3 and 5: interruption replies;
    4: no transcripts."""
    pause = noise_scenario("PauseHandling", 5.0, [(0.5, 4.5)])
    return [
        episode(turn_scenario(), {130: 7}),
        episode(turn_scenario()),
        episode(pause, {50: 7}),
        episode(interruption_scenario(), {140: 8}),
        episode(turn_scenario(transcripts=False), {130: 7}),
        episode(interruption_scenario(), {141: 9}),
    ]


def test_judge_terms_scores_judged_axes_and_marks_the_rest_missing():
    judge = ScriptedJudge(2.0, None, 1.0)
    terms = judge_terms(judge, batch(), WordDecoder())
    np.testing.assert_array_equal(terms.scores, [2.0, 0.0, np.nan, np.nan, np.nan, 1.0])
    assert (terms.failed, terms.untranscribed, terms.silent) == (1, 1, 1)
    assert judge.asked == [
        JudgeRequest(*side(turn_scenario()), "w7"),
        JudgeRequest(*side(interruption_scenario()), "w8"),
        JudgeRequest(*side(interruption_scenario()), "w9"),
    ]
    assert terms.as_dict() == {
        "llm_scored": 3,
        "llm_failed": 1,
        "llm_untranscribed": 1,
        "llm_silent": 1,
        "llm_mean": 1.0,
    }


def test_judge_terms_on_chosen_axes_and_asking_about_silence():
    judge = ScriptedJudge(1.0, 0.0)
    terms = judge_terms(judge, batch(), WordDecoder(), axes=(TurnTaking(),), silence_score=None)
    np.testing.assert_array_equal(terms.scores, [1.0, 0.0, np.nan, np.nan, np.nan, np.nan])
    assert [r.response for r in judge.asked] == ["w7", ""] and terms.silent == 0


def test_a_judge_that_raises_or_returns_non_finite_scores_fails_softly():
    terms = judge_terms(ScriptedJudge(error=RuntimeError("boom")), batch(), WordDecoder())
    np.testing.assert_array_equal(terms.scores, [np.nan, 0.0, np.nan, np.nan, np.nan, np.nan])
    assert terms.failed == 3 and terms.as_dict()["llm_mean"] == 0.0
    terms = judge_terms(ScriptedJudge(np.nan, np.inf, 2.0), batch(), WordDecoder())
    np.testing.assert_array_equal(terms.scores, [np.nan, 0.0, np.nan, np.nan, np.nan, 2.0])
    assert terms.failed == 2


def test_nothing_to_score_gives_all_nan():
    judge = ScriptedJudge()
    terms = judge_terms(judge, batch()[2:3], WordDecoder())
    assert np.isnan(terms.scores).all() and not judge.asked
    assert terms.as_dict()["llm_mean"] is None
    assert judge_terms(judge, [], WordDecoder()).scores.shape == (0,)


def test_judge_terms_rejects_bad_configuration():
    with pytest.raises(NotImplementedError, match=r"PauseHandling defines no judged_exchange"):
        judge_terms(ScriptedJudge(), batch(), WordDecoder(), axes=(TurnTaking(), PauseHandling()))
    with pytest.raises(ValueError, match="tokenizer"):
        judge_terms(ScriptedJudge(), batch())

    class Short(ScriptedJudge):
        def score(self, requests):
            return [1.0]

    with pytest.raises(ValueError, match="returned 1 scores for 3 requests"):
        judge_terms(Short(), batch(), WordDecoder())


@dataclass(frozen=True)
class FirstWords(Axis):
    """A throwaway axis that says nothing of what the judge reads (its turns: hand-made)."""

    name: ClassVar[str] = "FirstWords"

    def synthesize(self, rng, scenario_id):
        raise NotImplementedError

    def score(self, episode):
        return AxisScore(terms={})


@dataclass(frozen=True)
class JudgedFirstWords(FirstWords):
    """The judge reads the user's first utterance and the reply from its end."""

    def judged_exchange(self, scenario):
        first = min((u for u in scenario.transcripts if u.speaker == "user"), key=lambda u: u.start)
        return JudgedExchange((first,), first.end)


def first_words_episode(tokens):
    scenario = turn_scenario()
    scenario.axis = "FirstWords"
    return episode(scenario, tokens)


def test_a_new_axis_is_judged_by_its_own_exchange():
    judge = ScriptedJudge(2.0)
    # w5 is said during the first utterance (0.2-1.6 s), w7 after it: only w7 is the reply
    ep = first_words_episode({frame_at(1.0): 5, frame_at(1.7): 7})
    terms = judge_terms(judge, [ep], WordDecoder(), axes=(JudgedFirstWords(),))
    np.testing.assert_array_equal(terms.scores, [2.0])
    assert judge.asked == [JudgeRequest("", "I went to Paris.", "w7")]


def test_a_new_axis_without_an_exchange_says_which_method_it_lacks():
    message = (
        r"axis FirstWords defines no judged_exchange\(scenario\); "
        r"implement it to judge this axis' replies"
    )
    with pytest.raises(NotImplementedError, match=message):
        judge_terms(ScriptedJudge(), [first_words_episode({})], WordDecoder(), axes=(FirstWords(),))


def test_asr_hook_transcribes_the_reply_audio():
    heard = []

    def asr(audio, rate):
        heard.append((audio[0], len(audio), rate))
        return {0: "  sounds lovely ", 1: ""}[len(heard) - 1]

    scenario = turn_scenario()
    audio = np.arange(round((LEAD + scenario.duration) * SAMPLE_RATE), dtype=np.float64)
    judge = ScriptedJudge(2.0)
    terms = judge_terms(judge, [episode(scenario, audio=audio)] * 2, asr=asr)
    np.testing.assert_array_equal(terms.scores, [2.0, 0.0])  # the second heard silence
    assert judge.asked[0].response == "sounds lovely"
    start = round(10.04 * SAMPLE_RATE)
    assert heard[0] == (start, round(13.0 * SAMPLE_RATE) - start, SAMPLE_RATE)


def test_a_failing_asr_hook_is_a_failure_not_a_crash():
    def asr(audio, rate):
        raise RuntimeError("ASR down")

    audio = np.zeros(round(13.0 * SAMPLE_RATE), dtype=np.float32)
    terms = judge_terms(ScriptedJudge(), [episode(turn_scenario(), audio=audio)], asr=asr)
    assert np.isnan(terms.scores).all() and terms.failed == 1


# ------------------------------------------------- end to end: server -> term -> advantages


def test_judge_term_joins_the_timing_reward_by_decoupled_normalisation():
    def script(call, body):
        reply = body["messages"][1]["content"]
        grade = {"w1": "2", "w2": "1", "w4": "it is fine"}
        return completion(next(g for w, g in grade.items() if f"\n{w}\n" in reply))

    group = [episode(turn_scenario(), {130: i} if i else None) for i in (1, 2, 0, 4)]
    with chat_server(script) as server:
        judge = ChatCompletionsJudge(server.url, "judge-model", timeout_s=2.0)
        terms = judge_terms(judge, group, WordDecoder())
    assert isinstance(terms, JudgeTerms) and server.calls == 3
    # replies w1, w2, silence, w4: scores 2, 1, 0 (silent, not asked), NaN (unparsable)
    np.testing.assert_array_equal(terms.scores, [2.0, 1.0, 0.0, np.nan])
    assert judge.stats.failures == {"unparsable": 1}
    timing = np.array([-1.0, -0.5, -3.0, -0.5])
    adv = decoupled_advantages(
        {"turn": timing, "llm": terms.scores}, group_size=4, batch_norm=False
    )
    # judge over the three scored: mean 1, std 1; the unscored rollout gets 0 from it
    llm = np.array([1.0, 0.0, -1.0, 0.0]) / (1.0 + EPS)
    # timing: mean -1.25, deviations .25 .75 -1.75 .75, unbiased variance 4.25 / 3
    turn = np.array([0.25, 0.75, -1.75, 0.75]) / (math.sqrt(4.25 / 3) + EPS)
    np.testing.assert_allclose(adv.values, turn + llm)
    # GDPO's batch step (the default) then z-scores that sum over the batch (one group here)
    total = turn + llm
    batched = decoupled_advantages({"turn": timing, "llm": terms.scores}, group_size=4)
    expected = (total - total.mean()) / (np.std(total, ddof=1) + EPS)
    np.testing.assert_allclose(batched.values, expected)


def test_nan_silence_score_leaves_silent_replies_out_as_fdbench_does():
    # FD-Bench judges only replies that take the turn; NaN keeps silence out of the mean
    judge = ScriptedJudge(2.0, 1.0, 1.0)
    terms = judge_terms(judge, batch(), WordDecoder(), silence_score=float("nan"))
    np.testing.assert_array_equal(terms.scores, [2.0, np.nan, np.nan, 1.0, np.nan, 1.0])
    assert len(judge.asked) == 3 and terms.silent == 1
    assert terms.as_dict()["llm_mean"] == pytest.approx(4 / 3)
