"""fdenv-eval and the evaluation it runs: metrics with intervals, files, determinism."""

import json
import math
import shutil

import pytest
import soundfile as sf
import torch
from chat_server import chat_server, completion

from agents.baselines import AlwaysTalkAgent, RuleAgent, SilentAgent
from agents.cli import evaluate as cli
from agents.cli.evaluate import main, make_agent
from agents.evaluate import AxisResult, compare, evaluate, summarize_metric
from agents.moshi import MoshiPolicy, tiny_models


def test_summarize_metric_averages_the_values_that_exist():
    # latency of 3 episodes, the middle one without a take-over: (1 + 3) / 2 = 2 over 2 samples
    summary = summarize_metric((1.0, math.nan, 3.0))
    assert (summary.value, summary.samples) == (2.0, 2)
    assert 1.0 <= summary.low <= 2.0 <= summary.high <= 3.0
    empty = summarize_metric((math.nan,))
    assert empty.samples == 0 and math.isnan(empty.value) and str(empty) == "n/a"


def test_axis_result_keeps_its_two_argument_form():
    result = AxisResult("TurnTaking", (-1.0, -3.0))  # as the trainer rebuilds it from its log
    assert result.mean == -2.0 and result.metrics == {} and result.metric_summary == {}


def test_scripted_agents_get_rewards_and_metrics():
    results = compare(
        {"silent": SilentAgent(), "talk": AlwaysTalkAgent()}, ["TurnTaking", "PauseHandling"], 3
    )
    silent, talk = results["silent"]["TurnTaking"], results["talk"]["TurnTaking"]
    assert silent.metrics["tor"] == (0.0, 0.0, 0.0)
    assert all(math.isnan(v) for v in silent.metrics["latency"])
    # talking from the start takes every turn, before it ends: latency 0
    assert talk.metric_summary["tor"].value == 1.0 and talk.metrics["latency"] == (0.0,) * 3
    assert results["talk"]["PauseHandling"].metrics == {"tor": (1.0, 1.0, 1.0)}
    assert [e.scenario.id for e in silent.played] == [e.scenario.id for e in talk.played]


def test_moshi_evaluation_is_deterministic_for_a_seed():
    policy = MoshiPolicy(tiny_models())
    first = compare({"tiny": policy}, ["Backchannel"], 2)["tiny"]["Backchannel"]
    torch.manual_seed(99)  # compare seeds torch itself
    again = compare({"tiny": policy}, ["Backchannel"], 2)["tiny"]["Backchannel"]
    assert first == again
    assert set(first.metrics) == {"tor", "frequency", "jsd"}


def test_evaluate_refuses_no_episodes():
    with pytest.raises(ValueError, match="episodes"):
        evaluate(RuleAgent(), ["TurnTaking"], 0)


def test_command_writes_tables_plots_and_json(tmp_path):
    args = ["--agents", "silent", "rule", "--axes", "TurnTaking", "Backchannel"]
    assert main([*args, "--episodes", "2", "--out", str(tmp_path / "a")]) == 0
    for name in ("results.json", "results.md", "metrics.png", "timelines/rule-TurnTaking-0.png"):
        assert (tmp_path / "a" / name).is_file(), name
    record = json.loads((tmp_path / "a" / "results.json").read_text())["results"]
    silent = record["silent"]["TurnTaking"]["metrics"]
    assert silent["latency"] == {
        "value": None,
        "low": None,
        "high": None,
        "samples": 0,
        "values": [None, None],
    }
    assert record["rule"]["TurnTaking"]["metrics"]["tor"]["values"] == [1.0, 1.0]
    table = (tmp_path / "a" / "results.md").read_text()
    assert "| rule |" in table and "TurnTaking latency ↓" in table
    assert main([*args, "--episodes", "2", "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "results.json").read_text())["results"]
    assert again == record


def test_command_on_an_fdbench_folder(tmp_path, fixtures_dir):
    assert main(["--agents", "rule", "--fdbench", str(fixtures_dir), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())["results"]["rule"]
    assert set(record) == {"PauseHandling", "TurnTaking", "UserInterruption"}
    assert record["TurnTaking"]["scenarios"] == ["fdbench-smooth_turn_taking_example-1"]


def test_bad_command_lines(tmp_path):
    with pytest.raises(ValueError, match="unknown agent 'nobody'"):
        make_agent("nobody", "cpu")
    for argv in (
        ["--agents", "nobody"],
        ["--episodes", "0"],
        ["--write-outputs"],
        ["--score-outputs"],
        ["--agents"],
        ["--agents", "silent", "rule", "--fdbench", str(tmp_path), "--write-outputs"],
    ):
        with pytest.raises(SystemExit):
            main([*argv, "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        make_agent(f"checkpoint:{tmp_path}", "cpu")


def test_scripted_names():
    assert isinstance(make_agent("always-talk", "cpu"), AlwaysTalkAgent)
    assert isinstance(make_agent("rule", "cpu"), RuleAgent)
    assert isinstance(make_agent("silent", "cpu"), SilentAgent)


def test_command_exports_and_scores_an_fdbench_folder(tmp_path, fixtures_dir):
    bench = tmp_path / "bench"
    shutil.copytree(fixtures_dir, bench)
    argv = ["--agents", "rule", "--fdbench", str(bench), "--write-outputs", "--score-outputs"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    for folder in bench.glob("*/1"):  # the official client's 24 kHz, the input's duration
        source, output = sf.info(folder / "input.wav"), sf.info(folder / "output.wav")
        frames = round(source.frames / source.samplerate * 24000)
        assert (output.samplerate, output.frames) == (24000, frames)
    record = json.loads((tmp_path / "a" / "results.json").read_text())
    # the env's metrics of each sample and the scores of the files written for it agree
    for axis, scored in record["outputs"].items():
        for name, metric in scored["metrics"].items():
            assert metric["values"] == record["results"]["rule"][axis]["metrics"][name]["values"]
    # scoring alone, with no agent: the outputs just written
    argv = ["--agents", "--fdbench", str(bench), "--score-outputs"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    alone = json.loads((tmp_path / "results.json").read_text())
    assert "results" not in alone and alone["outputs"] == record["outputs"]


def test_export_flags_reach_the_export(tmp_path, fixtures_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "export_folder", lambda *args, **kwargs: calls.append(kwargs))
    argv = ["--agents", "rule", "--fdbench", str(fixtures_dir), "--write-outputs"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert main([*argv, "--output-rate", "input", "--lead-in-s", "0", "--out", str(tmp_path)]) == 0
    assert [(c["output_rate"], c["lead_in_s"]) for c in calls] == [(24000, 3.0), (None, 0.0)]
    with pytest.raises(SystemExit):
        main([*argv, "--output-rate", "16000", "--out", str(tmp_path)])


def test_judge_column_grades_replies_of_agents_that_have_text(tmp_path):
    with chat_server(lambda call, body: completion("4")) as server:
        args = ["--agents", "silent", "tiny-random", "--axes", "TurnTaking", "Backchannel"]
        judge = ["--judge-url", server.url, "--judge-model", "judge-test"]
        assert main([*args, *judge, "--episodes", "3", "--out", str(tmp_path)]) == 0
        calls = server.calls
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    tiny = results["tiny-random"]["TurnTaking"]["metrics"]["judge"]["values"]
    # a random tiny Moshi talks in every episode: each reply graded 4 on the 0-5 scale
    assert tiny == [4.0, 4.0, 4.0] and calls == 3
    silent = results["silent"]["TurnTaking"]["metrics"]["judge"]["values"]
    assert silent == [None, None, None]  # scripted agents have no text to judge
    assert "judge" not in results["tiny-random"]["Backchannel"]["metrics"]
    assert "TurnTaking judge ↑" in (tmp_path / "results.md").read_text()


def test_judge_needs_url_and_model_together(tmp_path):
    with pytest.raises(SystemExit):
        main(["--judge-url", "http://127.0.0.1:1/v1", "--out", str(tmp_path)])
