"""Flags and JSON files from config dataclasses (fdenv.config_flags), and the command lines that
take every setting from them: fdenv-train, fdenv-eval, fdenv-data mine."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from agents.cli import evaluate as eval_cli
from agents.cli import train as train_cli
from agents.grpo.trainer import GRPOConfig, JudgeConfig
from agents.moshi.policy import SamplingConfig
from fdenv.audio.acoustics import Acoustics, RoomConfig
from fdenv.cli import build_parser as data_parser
from fdenv.config import EnvConfig, changed_settings, plain
from fdenv.config_flags import ConfigError, ConfigFlags, field_docs, from_data, load_json
from fdenv.mining import MiningConfig
from fdenv.mining.command import MINING_FLAGS
from fdenv.segments import MiningRules
from fdenv.voice import Voice


@dataclass(frozen=True)
class Server:
    """Where requests go."""

    url: str
    """Base URL of the server."""
    model: str
    """Model it serves."""
    retries: int = 3
    """Retries per request."""


@dataclass(frozen=True)
class Room:
    size: float = 2.0
    """Side of the room in metres."""


@dataclass(frozen=True)
class Example:
    """Settings of every kind a flag can hold."""

    count: int = 1
    """How many (100% of them)."""
    rate: float = 0.5
    """How fast."""
    name: str = "x"
    """What it is called."""
    path: Path | None = None
    """Where it lives."""
    on: bool = False
    """Whether it runs."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    limit: float | None = 4.0
    """Upper limit; none: no limit."""
    names: tuple[str, ...] = ("p", "q")
    """Some names."""
    pair: tuple[float, float] = (0.0, 1.0)
    """Low and high."""
    grid: tuple[tuple[int, int], ...] = ((1, 2),)
    """Pairs of pairs."""
    weights: Mapping[str, float] | None = None
    """Weight per name."""
    voice: str | Voice = "text"
    """A name or an object."""
    speaker: Voice | None = None
    """Only an object."""
    room: Room = field(default_factory=lambda: Room(size=3.0))
    """The room, flattened."""
    server: Server | None = None
    """An optional server whose URL and model are required."""


def example_flags() -> ConfigFlags[Example]:
    return ConfigFlags(Example, flatten=("room",), skip={"count": "never"})


def parse(flags: ConfigFlags, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    flags.add_to(parser)
    return parser.parse_args(argv)


def test_field_docs_are_the_strings_after_the_fields():
    assert field_docs(Server) == {
        "url": "Base URL of the server.",
        "model": "Model it serves.",
        "retries": "Retries per request.",
    }


def test_help_shows_each_flag_with_its_doc_default_and_group():
    flags = ConfigFlags(Example, flatten=("room",))
    parser = argparse.ArgumentParser()
    flags.add_to(parser)
    text = " ".join(parser.format_help().split())
    for expected in (
        "--count INT How many (100% of them). (default: 1)",
        "--on, --no-on Whether it runs. (default: off)",
        "--mode {a,b} Which mode. (default: a)",
        "--names STR [STR ...] Some names. (default: p q)",
        "--pair FLOAT FLOAT Low and high. (default: 0.0 1.0)",
        "--grid JSON Pairs of pairs. (default: [[1, 2]])",
        "--weights KEY=VALUE [KEY=VALUE ...] Weight per name. (default: none)",
        "--size FLOAT Side of the room in metres. (default: 3.0)",  # the factory's default
        "--server-url STR Base URL of the server. (required)",
        "--server-retries INT Retries per request. (default: 3)",
        "No flags: speaker (set it from Python).",
    ):
        assert expected in text, expected
    assert "--speaker" not in text and "--room-size" not in text


def test_every_kind_of_field_from_flags():
    args = parse(
        example_flags(),
        [
            *("--rate", "1.5", "--name", "y", "--path", "a/b", "--on", "--mode", "b"),
            *("--limit", "none", "--names", "r", "s", "t", "--pair", "2", "3"),
            *("--grid", "[[3, 4], [5, 6]]", "--weights", "a=1", "b=2.5", "--voice", "text"),
            *("--size", "4", "--server-url", "http://h", "--server-model", "m"),
        ],
    )
    assert example_flags().build(args) == Example(
        rate=1.5,
        name="y",
        path=Path("a/b"),
        on=True,
        mode="b",
        limit=None,
        names=("r", "s", "t"),
        pair=(2.0, 3.0),
        grid=((3, 4), (5, 6)),
        weights={"a": 1.0, "b": 2.5},
        room=Room(4.0),
        server=Server("http://h", "m"),
    )
    json_object = parse(example_flags(), ["--weights", '{"a": 3}', "--no-on"])
    assert example_flags().build(json_object) == Example(weights={"a": 3.0}, on=False)
    assert "config.count" not in vars(parse(example_flags(), []))  # skipped: no flag


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server-url", "u"], "command line: --server-model is required"),
        (["--server"], "command line: --server-url is required"),
        (["--no-server", "--server-url", "u"], "--server-url sets a field of what --no-server"),
        (["--rate", "fast"], "--rate: must be a number, got 'fast'"),
        (["--mode", "c"], "--mode must be one of 'a', 'b', got the string 'c'"),
        (["--pair", "1", "2"], None),
        (["--weights", "a"], "--weights: takes key=value pairs or one JSON object"),
        (["--grid", "[[1, 2]"], "--grid: Expecting"),
    ],
)
def test_bad_flags_name_the_flag(argv, message):
    flags = example_flags()
    if message is None:
        assert flags.build(parse(flags, argv)).pair == (1.0, 2.0)
        return
    with pytest.raises(ConfigError, match=message):
        flags.build(parse(flags, argv))


def test_a_nested_optional_server_is_built_when_any_flag_is_given():
    flags = example_flags()
    args = parse(flags, ["--server-url", "u", "--server-model", "m", "--server-retries", "1"])
    assert flags.build(args).server == Server("u", "m", 1)
    assert flags.build(parse(flags, [])).server is None


def test_precedence_is_default_then_json_then_flags(tmp_path):
    path = tmp_path / "example.json"
    path.write_text(json.dumps({"rate": 2.0, "name": "from-json", "room": {}}))
    base = load_json(Example, path)
    assert base.room == Room(3.0)  # a partial nested object keeps the field's own default
    flags = example_flags()
    config = flags.build(parse(flags, ["--name", "from-flag", "--size", "5"]), base)
    assert (config.rate, config.name, config.room, config.mode) == (2.0, "from-flag", Room(5), "a")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"names": "p"}, "names must be a list of strings, got the string 'p'"),
        ({"nope": 1}, "unknown field nope; Example has count, rate"),
        ({"room": {"side": 1}}, "unknown field room.side"),
        ({"count": True}, "count must be an integer, got true"),
        ({"rate": "1"}, "rate must be a number, got the string '1'"),
        ({"pair": [1]}, r"pair must be a list of 2 numbers, got \[1\]"),
        ({"limit": "x"}, "limit must be null or a number"),
        ({"weights": {"a": "b"}}, "weights must be null or an object of numbers"),
        ({"speaker": {}}, "speaker holds a Python object"),
        ({"server": {"url": "u"}}, "server.model is required"),
        ({"mode": "c"}, "mode must be one of 'a', 'b'"),
    ],
)
def test_bad_json_names_the_file_and_field(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_json(Example, path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"count": 2,\n  "rate": }', "not valid JSON: Expecting value at line 2 column 11"),
        ("[1]", "must hold a JSON object of Example fields"),
        (None, "cannot read it"),
    ],
)
def test_a_bad_file_is_named_with_the_position(tmp_path, text, message):
    path = tmp_path / "config.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_json(Example, path)


# --- GRPOConfig: JSON round trip, validation, fdenv-train ----------------------------------------


def unusual_config() -> GRPOConfig:
    room = RoomConfig(num_rirs=4, rt60_range=(0.2, 0.3), room_size_range=((3, 3, 2.5), (4, 4, 3)))
    return GRPOConfig(
        axes=("TurnTaking", "Backchannel"),
        env=EnvConfig(
            scenarios="runs/mined/manifest.jsonl",
            num_scenarios=8,
            lead_in_s=2.0,
            acoustics=Acoustics(reverb_prob=0.5, snr_db_range=None, noise="white", room=room),
            axis_weights={"TurnTaking": 2.0},
        ),
        betas=(0.8, 0.9),
        epsilon_high=0.28,
        loss_type="dapo",
        reward_weights={"timing": 1.0, "llm": 0.5},
        sampling=SamplingConfig(temp_text=0.5, use_sampling=False),
        judge=JudgeConfig("http://127.0.0.1:8000/v1", "m", axes=("TurnTaking",), key_env="KEY"),
        fsdp=True,
    )


def test_a_config_written_by_plain_loads_back_equal(tmp_path):
    config = unusual_config()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(plain(config), indent=2))
    assert load_json(GRPOConfig, path) == config
    assert load_json(GRPOConfig, path).env.acoustics.room.room_size_range[1] == (4.0, 4.0, 3.0)
    assert from_data(GRPOConfig, plain(GRPOConfig())) == GRPOConfig()


def test_changed_settings_names_the_fields_that_differ():
    before = plain(unusual_config())
    after = plain(dataclasses.replace(unusual_config(), lr=1e-3, judge=None))
    assert changed_settings(before, after) == {
        "lr": (5e-4, 1e-3),
        "judge": (before["judge"], None),
    }
    assert changed_settings(before, before) == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iterations": -3}, "GRPOConfig.iterations must be an integer >= 1, got -3"),
        ({"iterations": True}, "GRPOConfig.iterations must be an integer >= 1, got True"),
        ({"eval_every": 0}, "GRPOConfig.eval_every must be an integer >= 1, got 0"),
        ({"checkpoint_every": 0}, "GRPOConfig.checkpoint_every must be an integer >= 1, got 0"),
        ({"rollouts_per_update": 0}, "GRPOConfig.rollouts_per_update must be an integer >= 1"),
        (
            {"rollouts_per_update": 33},
            r"rollouts_per_update must be at most groups \* group_size \(32\), got 33",
        ),
        ({"groups": 0}, "GRPOConfig.groups must be an integer >= 1, got 0"),
        ({"lr": 0.0}, "GRPOConfig.lr must be a number > 0.0, got 0.0"),
        ({"lr": float("nan")}, "GRPOConfig.lr must be a number > 0.0, got nan"),
        ({"seed": -1}, "GRPOConfig.seed must be an integer >= 0, got -1"),
        ({"context_prob": 1.5}, r"GRPOConfig.context_prob must be a number in \[0.0, 1.0\]"),
        ({"betas": (0.9, 1.0)}, r"GRPOConfig.betas must be a number in \[0.0, 1.0\), got 1.0"),
        ({"betas": (0.9,)}, "GRPOConfig.betas must be 2 numbers"),
        ({"epsilon_high": 0.1}, "GRPOConfig.epsilon_high must be a number >= 0.2, got 0.1"),
        ({"axes": "TurnTaking"}, "GRPOConfig.axes must be a tuple, got 'TurnTaking'"),
        ({"axes": ()}, "GRPOConfig.axes must name at least one axis"),
        ({"loss_type": "ppo"}, "GRPOConfig.loss_type must be one of"),
        ({"scale_rewards": "std"}, "GRPOConfig.scale_rewards must be one of"),
        ({"stream_weights": (0.0,) * 9}, "stream_weights must weigh at least one stream"),
        ({"stream_weights": (1.0, -1.0)}, "GRPOConfig.stream_weights must be a number >= 0.0"),
        ({"reward_weights": {"llm": -1}}, "GRPOConfig.reward_weights must be a number >= 0.0"),
        ({"beta_by_axis": {"PauseHandling": -1}}, "GRPOConfig.beta_by_axis must be a number >= 0"),
        ({"beta_by_axis": None}, "GRPOConfig.beta_by_axis must be a dict of axis weights"),
        ({"beta_by_axis": {"Pause": 0.4}}, r"beta_by_axis names unknown axes \['Pause'\] \(regis"),
        ({"judge": "http://x"}, "GRPOConfig.judge must be None or a JudgeConfig"),
    ],
)
def test_each_setting_is_checked_with_a_message_naming_it(changes, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**changes)


def test_lists_become_tuples():
    config = GRPOConfig(axes=["TurnTaking"], betas=[0.8, 0.9])
    assert config.axes == ("TurnTaking",) and config.betas == (0.8, 0.9)


def train_config(argv: list[str]) -> GRPOConfig:
    return train_cli.load_config(train_cli.build_parser().parse_args(argv))


def test_train_help_lists_every_field_with_its_doc():
    text = " ".join(train_cli.build_parser().format_help().split())
    flags = train_cli.CONFIG_FLAGS.flags.values()
    for flag in flags:
        assert flag.doc, f"{flag.option} has no docstring"
        first_words = " ".join(flag.doc.replace("``", "").split()[:3])
        assert f"{flag.option}" in text and first_words in text, flag.option
    assert {flag.path[0] for flag in flags} == {f.name for f in dataclasses.fields(GRPOConfig)}
    env_flags = {flag.path[1] for flag in flags if flag.path[0] == "env"}
    env_fields = {f.name for f in dataclasses.fields(EnvConfig)}
    assert env_flags == env_fields - {"text_card", "audio_card", "word_starts"}
    assert "No flags: env.text_card (the model's vocabulary)" in text


def test_train_flags_keep_their_names_and_reach_every_field():
    config = train_config(
        [
            *("--axes", "TurnTaking", "--iterations", "3", "--groups", "2", "--group-size", "4"),
            *("--lr", "0.001", "--beta", "0", "--lora-rank", "8", "--eval-episodes", "2"),
            *("--seed", "5", "--fsdp", "--scenarios", "runs/mined/manifest.jsonl"),
            *("--judge-url", "http://j/v1", "--judge-model", "m", "--judge-axes", "TurnTaking"),
            *("--judge-key-env", "KEY", "--judge-rubric", "fdbench"),
            *("--lead-in-s", "2", "--acoustics-snr-db-range", "10", "20"),
            *("--sampling-temp-text", "0.9", "--loss-type", "dapo", "--epsilon-high", "0.3"),
            *("--beta-by-axis", "TurnTaking=0.5"),
        ]
    )
    assert config == GRPOConfig(
        axes=("TurnTaking",),
        iterations=3,
        groups=2,
        group_size=4,
        lr=0.001,
        beta=0.0,
        lora_rank=8,
        eval_episodes=2,
        seed=5,
        fsdp=True,
        env=GRPOConfig().env.replace(
            scenarios="runs/mined/manifest.jsonl",
            lead_in_s=2.0,
            acoustics=Acoustics(snr_db_range=(10.0, 20.0)),
        ),
        judge=JudgeConfig("http://j/v1", "m", ("TurnTaking",), "KEY", "fdbench"),
        sampling=SamplingConfig(temp_text=0.9),
        loss_type="dapo",
        epsilon_high=0.3,
        beta_by_axis={"TurnTaking": 0.5},
    )


def test_train_config_file_then_flags(tmp_path):
    path = tmp_path / "run.json"
    settings = {"iterations": 5, "lr": 0.1, "env": {"lead_in_s": 1.0}, "judge": None}
    path.write_text(json.dumps(settings))
    config = train_config(["--config", str(path), "--iterations", "7", "--num-scenarios", "3"])
    assert (config.iterations, config.lr) == (7, 0.1)
    assert config.env == EnvConfig(num_scenarios=3, scenario_seed=1, lead_in_s=1.0, voice="audio")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"iterations": 3,}', r"not valid JSON: Expecting property name .* line 1 column 18"),
        ('{"axes": "TurnTaking"}', "axes must be a list of strings, got the string 'TurnTaking'"),
        ('{"iterations": -3}', "GRPOConfig.iterations must be an integer >= 1, got -3"),
        ('{"eval_every": 0}', "GRPOConfig.eval_every must be an integer >= 1"),
        ('{"scenarios": "x"}', "unknown field scenarios; GRPOConfig has axes, env"),
        ('{"env": {"lead_in": 2}}', "unknown field env.lead_in; EnvConfig has scenarios"),
    ],
)
def test_a_bad_config_file_stops_the_command_before_any_work(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match=f"fdenv-train: {path}: {message}"):
        train_cli.main(["--config", str(path), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_bad_flag_stops_the_command_naming_the_field(tmp_path):
    with pytest.raises(SystemExit, match=r"GRPOConfig\.iterations must be an integer >= 1, got -3"):
        train_cli.main(["--iterations", "-3", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="command line: --judge-model is required"):
        train_cli.main(["--judge-url", "http://127.0.0.1:1/v1", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# --- fdenv-eval and fdenv-data mine ---------------------------------------------------------------


def test_eval_takes_the_env_settings_as_flags(tmp_path):
    argv = ["--axes", "TurnTaking", "--episodes", "3", "--scenario-seed", "7", "--seed", "2"]
    argv += ["--lead-in-s", "1.5", "--acoustics-reverb-prob", "0", "--scenarios", "m.jsonl"]
    config = eval_cli.EVAL_FLAGS.build(eval_cli.build_parser().parse_args(argv))
    assert config.axes == ("TurnTaking",) and (config.episodes, config.seed) == (3, 2)
    assert config.env == EnvConfig(
        scenarios="m.jsonl",
        scenario_seed=7,
        lead_in_s=1.5,
        acoustics=Acoustics(reverb_prob=0.0),
        voice="auto",
    )
    default = eval_cli.EVAL_FLAGS.build(eval_cli.build_parser().parse_args([]))
    assert default.env.scenario_seed == 1000 and default.episodes == 32


def test_eval_plays_with_the_env_flags(tmp_path, monkeypatch):
    played_with = []
    compare = eval_cli.compare

    def spy(*args, **kwargs):
        played_with.append(kwargs["env"])
        return compare(*args, **kwargs)

    monkeypatch.setattr(eval_cli, "compare", spy)
    argv = ["--agents", "silent", "--axes", "TurnTaking", "--episodes", "1", "--timelines", "0"]
    assert eval_cli.main([*argv, "--lead-in-s", "1.0", "--out", str(tmp_path)]) == 0
    assert played_with == [EnvConfig(scenario_seed=1000, lead_in_s=1.0, voice="auto")]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["config"]["env"]["lead_in_s"] == 1.0 and record["config"]["episodes"] == 1
    assert record["args"]["agents"] == "['silent']" and "config.episodes" not in record["args"]


def test_mine_flags_are_mining_config_fields():
    argv = ["mine", "--corpus", "seamless", "--root", "corpus", "--out", "out"]
    argv += ["--max-per-axis", "1", "--format", "wav", "--rules-response-s", "4", "--acoustics"]
    argv += ["--acoustics-room-rt60-range", "0.2", "0.4", "--vad", "webrtc"]
    config = MINING_FLAGS.build(data_parser().parse_args(argv))
    assert config == MiningConfig(
        max_per_axis=1,
        audio_format="wav",
        rules=MiningRules(response_s=4.0),
        acoustics=Acoustics(room=RoomConfig(rt60_range=(0.2, 0.4))),
        vad="webrtc",
    )
    bad = data_parser().parse_args([*argv[:7], "--vad", "energy"])
    with pytest.raises(ConfigError, match=r"MiningConfig\.vad must be one of"):
        MINING_FLAGS.build(bad)
