"""The four reward rules as pure functions, with hand-computed values."""

import numpy as np
import pytest

from fdenv.axes.backchannel import Backchannel, backchannel_f1, match_count
from fdenv.axes.pause_handling import PauseHandling, pause_reward
from fdenv.axes.turn_taking import TurnTaking, response_delay
from fdenv.axes.user_interruption import UserInterruption, interruption_delay
from fdenv.constants import PAD_ID
from fdenv.episode import Episode
from fdenv.scenarios.synthetic import make_scenario
from fdenv.timeline import Interval as I


class TestPause:
    def test_longer_than_one_second_is_a_takeover(self):
        assert pause_reward([I(2.0, 3.5)]) == -1.0  # 1.5 s
        assert pause_reward([I(2.0, 2.8), I(3.0, 3.9)]) == 0.0  # 0.8 s and 0.9 s

    def test_exactly_one_second_is_allowed_and_silence_is_fine(self):
        assert pause_reward([I(2.0, 3.0)]) == 0.0
        assert pause_reward([]) == 0.0

    def test_the_span_rule_sees_bursts_as_one_takeover(self):
        # bursts of 0.8 s and 0.9 s span 2.0 -> 3.9 = 1.9 s: fine by interval, a takeover by span
        bursts = [I(2.0, 2.8), I(3.0, 3.9)]
        assert pause_reward(bursts, rule="interval") == 0.0
        assert pause_reward(bursts, rule="span") == -1.0
        # two 0.3 s backchannels 0.6 s apart span 0.3 + 0.4 + 0.3 = 1.0 s: allowed
        assert pause_reward([I(1.0, 1.3), I(1.7, 2.0)], rule="span") == 0.0
        assert pause_reward([], rule="span") == 0.0
        assert pause_reward([I(2.0, 3.5)], rule="span") == -1.0

    def test_an_unknown_rule_is_refused(self):
        with pytest.raises(ValueError, match="'interval' or 'span'"):
            pause_reward([], rule="total")
        with pytest.raises(ValueError, match="'interval' or 'span'"):
            PauseHandling(rule="total")


class TestTurnTaking:
    def test_delay_from_turn_end_to_first_long_utterance(self):
        # turn ends at 5.0; a 2 s answer at 5.4 -> d = 0.4
        assert response_delay([I(5.4, 7.4)], 5.0, 10.0) == (pytest.approx(0.4), True)

    def test_short_utterances_do_not_count(self):
        # 0.8 s at 5.2 is not a response; the 1.5 s one at 6.0 is: d = 1.0
        assert response_delay([I(5.2, 6.0), I(6.0, 7.5)], 5.0, 10.0)[0] == pytest.approx(1.0)

    def test_barge_in_across_turn_end_costs_its_earliness(self):
        # started 0.5 s before the turn end and kept going: d = |4.5 - 5.0|
        assert response_delay([I(4.5, 7.0)], 5.0, 10.0) == (pytest.approx(0.5), True)

    def test_speech_ending_before_turn_end_is_not_the_response(self):
        assert response_delay([I(2.0, 3.5), I(6.0, 8.0)], 5.0, 10.0)[0] == pytest.approx(1.0)

    def test_never_answering_costs_the_rest_of_the_window(self):
        assert response_delay([], 5.0, 10.0) == (pytest.approx(5.0), False)
        assert response_delay([I(5.5, 6.2)], 5.0, 9.0) == (pytest.approx(4.0), False)

    def _episode(self, speech):
        scenario = make_scenario(TurnTaking(), 0, 0)
        frames = int(scenario.duration / 0.08) + 1
        text = np.full(frames, PAD_ID)
        return scenario, Episode(scenario, 0.0, np.zeros(frames, bool), text, speech)

    def test_the_mid_turn_rule_charges_speech_in_the_users_turn(self):
        scenario, _ = self._episode([])
        end = scenario.turn_end
        answer = I(end + 0.4, end + 2.4)
        cases = {
            # a 1.5 s barge-in mid-turn, then the answer: free by the paper's rule
            "barge-in": ([I(1.0, 2.5), answer], -1.0, -1.0),
            # two 0.8 s bursts 0.2 s apart: fine one by one, 1.8 s as a span
            "bursts": ([I(1.0, 1.8), I(2.0, 2.8), answer], 0.0, -1.0),
            # a 0.3 s backchannel mid-turn: fine either way
            "backchannel": ([I(1.0, 1.3), answer], 0.0, 0.0),
            # an answer begun 1.2 s early: 1.2 s of it lies in the turn
            "early answer": ([I(end - 1.2, end + 2.0)], -1.0, -1.0),
            # begun 0.6 s early: within the pause rule's 1 s
            "slight overlap": ([I(end - 0.6, end + 2.0)], 0.0, 0.0),
        }
        for name, (speech, interval, span) in cases.items():
            _, episode = self._episode(speech)
            paper = TurnTaking().score(episode)
            assert set(paper.terms) == {"turn"}, name
            for rule, expected in (("interval", interval), ("span", span)):
                score = TurnTaking(mid_turn_rule=rule).score(episode)
                assert score.terms["turn"] == paper.terms["turn"], name
                assert score.terms["pause"] == expected, (name, rule)
                assert score.reward == pytest.approx(paper.reward + expected), (name, rule)

    def test_the_benchmark_hears_only_voiced_words(self):
        # the text stream answers from 0.4 s after the turn end for 1.2 s; the benchmark's
        # turn is taken only where the audio voices those words
        scenario, _ = self._episode([])
        frames = int(scenario.duration / 0.08) + 1
        text = np.full(frames, PAD_ID)
        first = int((scenario.turn_end + 0.4) / 0.08) + 1
        text[first : first + 15] = np.arange(1000, 1015)
        answer = I(first * 0.08, first * 0.08 + 1.3)
        for speech, tor in (([], 0.0), ([answer], 1.0)):
            episode = Episode(scenario, 0.0, np.zeros(frames, bool), text, speech)
            assert TurnTaking().metrics(episode)["tor"] == tor

    def test_the_mid_turn_threshold_is_a_setting(self):
        scenario, _ = self._episode([])
        end = scenario.turn_end
        # a 0.8 s interval mid-turn, then the answer: within 1 s, over 0.5 s
        _, episode = self._episode([I(1.0, 1.8), I(end + 0.4, end + 2.4)])
        assert TurnTaking(mid_turn_rule="interval").score(episode).terms["pause"] == 0.0
        strict = TurnTaking(mid_turn_rule="interval", mid_turn_max_speech_s=0.5)
        assert strict.score(episode).terms["pause"] == -1.0

    def test_the_reward_is_decided_from_the_turn_end(self):
        # what the agent says in the user's turn and stops before its end leaves R_turn alone,
        # so a trainer may credit the advantage from the turn end (GRPOConfig.axis_credit)
        scenario, _ = self._episode([])
        end = scenario.turn_end
        assert TurnTaking().credit_start(scenario) == end
        answer = I(end + 0.4, end + 2.4)
        alone = TurnTaking().score(self._episode([answer])[1]).reward
        chatty = TurnTaking().score(self._episode([I(0.5, 2.0), I(2.5, end), answer])[1])
        assert chatty.reward == alone
        # the mid-turn rule judges the user's turn too
        assert TurnTaking(mid_turn_rule="interval").credit_start(scenario) == 0.0

    def test_an_unknown_mid_turn_rule_is_refused(self):
        with pytest.raises(ValueError, match="'interval' or 'span'"):
            TurnTaking(mid_turn_rule="total")
        with pytest.raises(ValueError, match="mid_turn_max_speech_s must be > 0, got 0"):
            TurnTaking(mid_turn_rule="interval", mid_turn_max_speech_s=0)


class TestInterruption:
    def test_delay_is_measured_from_the_end_of_the_interruption(self):
        # interruption 4-7 s; agent yields at 4.5 and answers at 7.5 -> d = 0.5 (not 3.5)
        spans = [I(1.0, 4.5), I(7.5, 9.0)]
        assert interruption_delay(spans, I(4.0, 7.0), 10.0) == (pytest.approx(0.5), True)

    def test_talking_straight_through_is_no_response(self):
        assert interruption_delay([I(1.0, 9.0)], I(4.0, 7.0), 10.0) == (pytest.approx(3.0), False)

    def test_restart_inside_the_interruption_costs_its_earliness(self):
        assert interruption_delay([I(6.5, 9.0)], I(4.0, 7.0), 10.0)[0] == pytest.approx(0.5)

    def test_min_response_length_skips_a_backchannel(self):
        spans = [I(7.2, 7.5), I(8.0, 9.5)]  # a 0.3 s "mm" at 7.2, the answer at 8.0
        assert interruption_delay(spans, I(4.0, 7.0), 10.0)[0] == pytest.approx(0.2)
        assert interruption_delay(spans, I(4.0, 7.0), 10.0, 1.0)[0] == pytest.approx(1.0)

    def test_silence_costs_the_rest(self):
        assert interruption_delay([], I(4.0, 7.0), 12.0) == (pytest.approx(5.0), False)

    def test_the_reward_is_decided_from_the_interruptions_start(self):
        scenario = make_scenario(UserInterruption(), 0, 0)
        cut_in = scenario.interruption
        assert UserInterruption().credit_start(scenario) == cut_in.start
        frames = int(scenario.duration / 0.08) + 1

        def reward(speech):
            episode = Episode(
                scenario, 0.0, np.zeros(frames, bool), np.full(frames, PAD_ID), speech
            )
            return UserInterruption().score(episode).reward

        answer = I(cut_in.end + 0.3, cut_in.end + 1.5)
        assert reward([I(0.2, cut_in.start), answer]) == reward([answer]) == pytest.approx(-0.3)


def test_pause_and_backchannel_rewards_are_decided_over_the_whole_scenario():
    for axis in (PauseHandling(), Backchannel()):
        assert axis.credit_start(make_scenario(axis, 0, 0)) == 0.0


class TestBackchannel:
    truth = (I(2.0, 2.4), I(5.0, 5.4), I(8.0, 8.4))

    def test_backchannels_at_the_truth_give_f1_one(self):
        f1, counts = backchannel_f1([I(2.0, 2.3), I(5.1, 5.5), I(7.5, 7.9)], self.truth)
        assert f1 == 1.0
        assert counts["true_positives"] == 3

    def test_one_extra_takeover_lowers_f1_to_six_sevenths(self):
        # TP = 3, predicted = 3 backchannels + 1 takeover, truth = 3: F1 = 2*3 / (4 + 3)
        spans = [I(2.0, 2.3), I(5.1, 5.5), I(7.5, 7.9), I(9.0, 11.0)]
        f1, counts = backchannel_f1(spans, self.truth)
        assert f1 == pytest.approx(6 / 7)
        assert counts["takeovers"] == 1

    def test_tolerance_is_one_second_either_side(self):
        assert backchannel_f1([I(3.0, 3.3)], [I(2.0, 2.4)])[0] == 1.0  # exactly 1 s late
        assert backchannel_f1([I(3.1, 3.3)], [I(2.0, 2.4)])[0] == 0.0  # 1.1 s late
        assert backchannel_f1([I(0.9, 1.2)], [I(2.0, 2.4)])[0] == 0.0  # 1.1 s early

    def test_matching_is_one_to_one(self):
        # two backchannels near one truth: TP 1, predicted 2, truth 1 -> 2/3
        assert backchannel_f1([I(1.8, 2.1), I(2.3, 2.6)], [I(2.0, 2.4)])[0] == pytest.approx(2 / 3)

    def test_a_one_second_interval_is_still_a_backchannel(self):
        f1, counts = backchannel_f1([I(2.0, 3.0)], [I(2.0, 2.4)])
        assert (f1, counts["backchannels"], counts["takeovers"]) == (1.0, 1, 0)

    def test_empty_cases(self):
        assert backchannel_f1([], self.truth)[0] == 0.0
        assert backchannel_f1([], [])[0] == 1.0
        assert backchannel_f1([I(1.0, 1.5)], [])[0] == 0.0

    def test_greedy_matching_is_maximal(self):
        # pairing 1.6 with 2.5 would strand 2.0; the scan pairs 1.6-1.0 and 2.0-2.5
        assert match_count([1.6, 2.0], [1.0, 2.5], tolerance_s=1.0) == 2
        assert match_count([], [1.0], 1.0) == 0


class TestBackchannelWords:
    truth = (I(2.0, 2.4), I(5.0, 5.4), I(8.0, 8.4))

    def test_a_wordy_backchannel_is_a_takeover(self):
        # the 2nd interval is short but too wordy: TP 2, predicted 3 (2 + 1 takeover), truth 3
        spans = [I(2.0, 2.3), I(5.1, 5.5), I(7.5, 7.9)]
        f1, counts = backchannel_f1(spans, self.truth, too_wordy=[False, True, False])
        assert f1 == pytest.approx(4 / 6)
        assert (counts["backchannels"], counts["takeovers"]) == (2, 1)

    def test_the_axis_counts_the_agents_word_tokens(self):
        scenario = make_scenario(Backchannel(), 0, 0)
        starts = [t.start for t in scenario.backchannels]
        frames = int(scenario.duration / 0.08) + 1
        text = np.full(frames, PAD_ID)
        speech = []
        for n, start in enumerate(starts):
            first = int(start / 0.08)
            text[first : first + 1 + 2 * (n == 0)] = 100  # 3 tokens in the first, 1 elsewhere
            speech.append(I(first * 0.08, first * 0.08 + 0.5))
        episode = Episode(scenario, 0.0, np.zeros(frames, bool), text, speech)
        paper = Backchannel().score(episode)
        benchmark = Backchannel(max_backchannel_words=2).score(episode)
        assert paper.stats["takeovers"] == 0 and paper.reward == 1.0
        assert benchmark.stats["takeovers"] == 1
        n = len(starts)  # F1 = 2 (n - 1) / (n + n)
        assert benchmark.reward == pytest.approx((n - 1) / n)

    def test_a_takeover_can_set_the_episode_score(self):
        # a hit and a 2 s takeover: the paper's F1 = 2 * 1 / (2 + 1); with a takeover score: it
        spans = [I(2.0, 2.3), I(4.0, 6.0)]
        assert backchannel_f1(spans, self.truth[:1])[0] == pytest.approx(2 / 3)
        f1, counts = backchannel_f1(spans, self.truth[:1], takeover_score=0.0)
        assert (f1, counts["takeovers"], counts["true_positives"]) == (0.0, 1, 1)
        assert backchannel_f1(spans, self.truth[:1], takeover_score=-1.0)[0] == -1.0
        # a wordy short interval is a takeover, so it sets the score too
        assert (
            backchannel_f1(spans[:1], self.truth[:1], too_wordy=[True], takeover_score=-1.0)[0]
            == -1.0
        )
        # no takeover: the F1 as before (a spare backchannel costs what it did; silence is 0)
        spare = [I(2.0, 2.3), I(4.0, 4.5)]
        assert backchannel_f1(spare, self.truth[:1], takeover_score=-1.0)[0] == pytest.approx(2 / 3)
        assert backchannel_f1([], self.truth[:1], takeover_score=-1.0)[0] == 0.0

    def test_the_axis_scores_an_episode_with_a_takeover_as_asked(self):
        scenario = make_scenario(Backchannel(), 0, 0)
        start = scenario.backchannels[0].start
        frames = int(scenario.duration / 0.08) + 1
        speech = [I(start, start + 0.4), I(start + 1.5, start + 3.0)]  # a hit, a 1.5 s takeover
        episode = Episode(scenario, 0.0, np.zeros(frames, bool), np.full(frames, PAD_ID), speech)
        assert Backchannel().score(episode).reward > 0.0
        failed = Backchannel(takeover_score=0).score(episode).reward
        assert failed == 0.0 and isinstance(failed, float)
        assert Backchannel(takeover_score=-1.0).score(episode).reward == -1.0
        silent = Episode(scenario, 0.0, np.zeros(frames, bool), np.full(frames, PAD_ID), [])
        assert Backchannel(takeover_score=-1.0).score(silent).reward == 0.0
        for bad in ("yes", True, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="takeover_score must be None or a finite number"):
                Backchannel(takeover_score=bad)

    @pytest.mark.parametrize("words", [0, 1.5, True])
    def test_bad_word_limits_are_refused(self, words):
        with pytest.raises(ValueError, match="max_backchannel_words"):
            Backchannel(max_backchannel_words=words)
