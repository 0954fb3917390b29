"""Result tables take their arrows from the axes, refuse a metric without one, and logs keep
them."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.baselines import SilentAgent
from agents.evaluate import AxisResult, compare, paired_metric_changes
from agents.report import (
    eval_json,
    metric_changes_markdown,
    metrics_markdown,
    results_from_json,
    summary_table,
)
from fdenv.registration import register_axis, unregister_axis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from custom_axis import Greeting


def greeting_result(directions: dict[str, str]) -> dict[str, dict[str, AxisResult]]:
    metrics = {"greeted": (1.0, 0.0), "opening_s": (0.4, np.nan), "overlap_s": (0.0, 0.5)}
    return {"agent": {"Greeting": AxisResult("Greeting", (-0.4, -2.0), metrics, (), directions)}}


def test_a_new_axis_gets_its_arrows_from_its_metric_directions():
    register_axis(Greeting)
    try:
        results = compare({"silent": SilentAgent()}, ["Greeting"], 2)
    finally:
        unregister_axis("Greeting")
    assert results["silent"]["Greeting"].directions == Greeting.metric_directions
    table = metrics_markdown(results)
    for header in ("Greeting greeted ↑", "Greeting opening_s ↓", "Greeting overlap_s ↓"):
        assert header in table


def test_a_metric_without_a_direction_is_an_error():
    results = greeting_result({"greeted": "up", "overlap_s": "down"})
    with pytest.raises(ValueError, match="axis Greeting's metric_directions has no entry for "):
        metrics_markdown(results)
    results = greeting_result({"greeted": "up", "opening_s": "earlier", "overlap_s": "down"})
    with pytest.raises(ValueError, match="gives 'opening_s' the direction 'earlier'"):
        metrics_markdown(results)


def test_logged_evaluations_keep_their_directions():
    (result,) = greeting_result(dict(Greeting.metric_directions))["agent"].values()
    logged = json.loads(json.dumps(eval_json({"Greeting": result})))
    assert results_from_json(logged)["Greeting"].directions == Greeting.metric_directions
    del logged["Greeting"]["directions"]  # a log written before directions were
    assert results_from_json(logged)["Greeting"].directions == {}


def _result(tor, latency, rewards=(0.0, 0.0, 0.0, 0.0)):
    return AxisResult(
        "TurnTaking",
        rewards,
        {"tor": tor, "latency": latency},
        directions={"tor": "up", "latency": "down"},
    )


def test_paired_metric_changes_pair_episode_by_episode():
    nan = float("nan")
    before = {"TurnTaking": _result((0.0, 0.0) + (1.0,) * 6, (nan, nan) + (0.5, 0.9) * 3)}
    after = {"TurnTaking": _result((1.0,) * 8, (0.2, 0.3) + (0.3, 0.6) * 3)}
    changes = paired_metric_changes(before, after)
    tor, latency = changes["TurnTaking", "tor"], changes["TurnTaking", "latency"]
    # TOR: differences [1, 1, 0 x 6], mean 0.25; every resample's mean is in [0, 1]
    assert (tor.mean, tor.pairs) == (0.25, 8) and 0.0 <= tor.low <= tor.high <= 1.0
    # latency: only episodes 2-7 took over both times: differences -0.2 and -0.3, three each
    assert latency.pairs == 6 and latency.mean == pytest.approx(-0.25)
    assert -0.3 <= latency.low < latency.high <= -0.2
    assert latency.verdict == "better"  # down is better, the whole interval is below 0


def test_a_verdict_needs_six_pairs():
    """Two pairs that both improve: the bootstrap interval excludes 0, the verdict must not
    say better (a sign test needs six agreeing pairs for 5%)."""
    nan = float("nan")
    before = {"TurnTaking": _result((0.0,) * 6, (nan,) * 4 + (0.5, 0.9))}
    after = {"TurnTaking": _result((1.0,) * 6, (nan,) * 4 + (0.3, 0.6))}
    latency = paired_metric_changes(before, after)["TurnTaking", "latency"]
    assert latency.pairs == 2 and latency.high < 0
    assert latency.verdict == "too few"
    assert str(latency) == "-0.250 [-0.300, -0.200] too few"
    table = metric_changes_markdown(before, after)
    assert "Better beyond noise: 1 of 2; worse beyond noise: 0." in table  # the TOR alone


def test_paired_metric_verdicts_follow_the_direction_and_noise():
    before = {"TurnTaking": _result((1.0,) * 6, (0.1,) * 6)}
    worse = {"TurnTaking": _result((0.0,) * 6, (0.2, 0.3) * 3)}
    noisy = {
        "TurnTaking": _result((1.0, 0.0, 1.0, 1.0, 1.0, 1.0), (0.0, 0.2, 0.05, 0.15, 0.1, 0.1))
    }
    changes = paired_metric_changes(before, worse)
    assert changes["TurnTaking", "tor"].verdict == "worse"
    assert changes["TurnTaking", "latency"].verdict == "worse"
    changes = paired_metric_changes(before, noisy)
    assert changes["TurnTaking", "tor"].verdict == "same"
    assert changes["TurnTaking", "latency"].verdict == "same"
    table = metric_changes_markdown(before, worse)
    assert "| TurnTaking tor ↑ | -1.000 [-1.000, -1.000] worse | 6 |" in table
    assert "Better beyond noise: 0 of 2; worse beyond noise: 2." in table


def test_a_metric_no_episode_pairs_is_shown_as_missing():
    nan = float("nan")
    before = {"TurnTaking": _result((0.0,) * 4, (nan,) * 4)}
    after = {"TurnTaking": _result((1.0,) * 4, (0.2,) * 4)}
    latency = paired_metric_changes(before, after)["TurnTaking", "latency"]
    assert latency.pairs == 0 and str(latency) == "n/a"


def test_the_summary_scores_a_remedied_axis_by_the_paper_rule_too():
    # Backchannel trained with a remedy: its rewards are the remedy's, paper_rewards the
    # paper's rule on the same episodes. Pause: plain (no extra row).
    before = {
        "PauseHandling": AxisResult("PauseHandling", (0.0, -1.0)),
        "Backchannel": AxisResult("Backchannel", (0.0, 0.5), paper_rewards=(0.5, 0.5)),
    }
    after = {
        "PauseHandling": AxisResult("PauseHandling", (0.0, 0.0)),
        "Backchannel": AxisResult("Backchannel", (1.0, 1.0), paper_rewards=(1.0, 0.5)),
    }
    rows = summary_table(before, after).splitlines()
    # remedy: changes +1.0, +0.5 (mean +0.75); pause +0, +1 (+0.5); per scenario (0.5, 0.75)
    assert rows[3].startswith("| Backchannel | +0.250") and rows[3].endswith(
        "| +0.750 [+0.500, +1.000] |"
    )
    assert rows[4] == "| mean over axes | -0.125 | +0.500 | +0.625 [+0.500, +0.750] |"
    # paper's rule: changes +0.5, 0 (mean +0.25); per scenario means (0.25, 0.5)
    assert rows[5].startswith("| Backchannel, paper's rule | +0.500")
    assert rows[5].endswith("| +0.250 [+0.000, +0.500] |")
    assert (
        rows[6] == "| mean over axes, paper's rules | +0.000 | +0.375 | +0.375 [+0.250, +0.500] |"
    )
    assert len(rows) == 7
    logged = json.loads(json.dumps(eval_json(after)))
    assert results_from_json(logged)["Backchannel"].paper_rewards == (1.0, 0.5)
    assert "paper_rewards" not in logged["PauseHandling"]
