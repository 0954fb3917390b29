"""Result tables take their arrows from the axes, refuse a metric without one, and logs keep
them."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.baselines import SilentAgent
from agents.evaluate import AxisResult, compare
from agents.report import eval_json, metrics_markdown, results_from_json
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
