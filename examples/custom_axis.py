"""A new interactivity axis in one file: Greeting, then GRPO on it with the tiny Moshi.

    python examples/custom_axis.py                      # one or two minutes on a CPU core
    python examples/custom_axis.py --iterations 3 --eval-episodes 4 --out /tmp/greeting

**The axis.** In a real call the side that picks up speaks first ("Hello?") and then lets the
caller talk. The paper's axes never score that. Greeting does: each scenario starts with the
caller waiting in silence for 1-2 s, then answering the greeting. Its reward terms:

- ``greeting`` = minus the seconds from the scenario's start to the agent's first speech; if the
  agent says nothing before the caller's first word, the whole wait up to it is charged. Earlier
  openings score higher, so the rollouts of a GRPO group differ and carry a signal. (Speech
  begun in the env's lead-in counts from time 0, as on every axis; the lead-in's frames are not
  trained, so the reward must be earnable in the scenario.)
- ``overlap`` = minus the seconds the agent talks while the caller speaks: opening the
  conversation is no licence to talk over the answer.

Silence scores minus the caller's wait, talking all the time minus the caller's speech time, and
the best policy says a short greeting at once and stops.

**What an axis provides** (nothing outside this file changes): ``synthesize`` builds a scenario
with exact labels from espeak speech, ``score`` returns the reward terms and stats the env puts
in ``info``, ``metrics`` the evaluation numbers and ``metric_directions`` which way each is
better (the arrows of ``fdenv-eval``'s tables), and ``mine`` finds the axis' segments in
two-channel conversations so that ``fdenv`` can cut them from a real corpus. ``register_axis``
turns it into ``FullDuplex-Greeting-v0``, single and vector env. Greeting leaves out the two
other optional methods, ``judged_exchange`` (what an LLM judge grades) and ``reference_lines``
(what a warm start teaches).

**The training.** ``GRPOTrainer`` takes the axis by name like the paper's four. GRPO learns only
from differences within a group, so the starting model must sometimes greet and sometimes not:
the warm-started tiny Moshi (``--model base``) was taught silence until the user's turn ends,
never greets, and nearly all its groups are flat. The default, ``--model chatty``, is a random
tiny Moshi whose PAD token gets a bias, so that it pads now and then: it greets at once and
talks through most of the caller's answer, more or less in each rollout, which GRPO can use.
Each iteration prints the mean training reward; the held-out reward and metrics are printed
before and after.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fdenv import Axis, AxisScore, Episode, Scenario, register_axis
from fdenv.config import EnvConfig
from fdenv.scenarios.sentences import load_sentence_bank, unmarked
from fdenv.scenarios.synthetic import new_track, synthetic_source
from fdenv.segments import ConversationLabels, MiningRules, Segment
from fdenv.timeline import Interval, clip, total_duration

if TYPE_CHECKING:
    from agents.moshi.models import MoshiModels

REPLIES = (
    "Hi, thanks for picking up.",
    "Hello, nice to talk to you.",
    "Oh hi, how are you doing today?",
    "Hey there, good to hear from you.",
    "Hello, do you have a minute?",
)
"""How a caller answers a greeting; a statement from the sentence bank follows."""


def first_speech(intervals: list[Interval]) -> float | None:
    """Start of the earliest interval, or None if there is none."""
    return min((i.start for i in intervals), default=None)


def overlap_s(agent: list[Interval], user: list[Interval]) -> float:
    """Seconds during which both speak (the user's intervals do not overlap each other)."""
    return total_duration(i for u in user for i in clip(agent, u.start, u.end))


@dataclass(frozen=True)
class Greeting(Axis):
    """Open the conversation in the lead-in, then let the user answer."""

    name: ClassVar[str] = "Greeting"
    required_labels: ClassVar[tuple[str, ...]] = ("user_speech",)
    metric_directions: ClassVar[Mapping[str, str]] = {
        "greeted": "up",
        "opening_s": "down",
        "overlap_s": "down",
    }

    user_wait_s: tuple[float, float] = (1.0, 2.0)
    """Silence at the start of a synthetic scenario: the caller waits for the greeting."""
    tail_s: float = 0.5
    max_opening_s: float = 3.0
    """Mining: the partner's opening must start this soon after the recording does."""
    min_reply_s: float = 1.0
    """Mining: the user's first utterance must last this long to be an answer."""

    def synthesize(self, rng: np.random.Generator, scenario_id: str) -> Scenario:
        """The caller waits, answers the greeting, says one more line, then stops."""
        bank = load_sentence_bank()
        track = new_track(rng, self.user_wait_s)
        track.say(REPLIES[rng.integers(len(REPLIES))])
        track.silence(rng.uniform(0.2, 0.5))
        track.say(unmarked(bank.statements[rng.integers(len(bank.statements))]))
        track.silence(self.tail_s)
        return Scenario(
            id=scenario_id,
            axis=self.name,
            audio=track.audio(),
            user_speech=track.speech,
            transcripts=track.transcripts,
            source=synthetic_source(track),
        )

    def score(self, episode: Episode) -> AxisScore:
        user = episode.scenario.user_speech
        user_starts = first_speech(user)
        assert user_starts is not None  # required label, validated
        agent = episode.agent_speech_in_window()
        opened = first_speech(clip(agent, 0.0, user_starts))
        wait = user_starts if opened is None else opened
        talked_over = overlap_s(agent, user)
        return AxisScore(
            terms={"greeting": -wait, "overlap": -talked_over},
            stats={"opening_wait_s": wait, "greeted": float(opened is not None)},
        )

    def metrics(self, episode: Episode) -> dict[str, float]:
        """``greeted`` (0/1), ``opening_s`` (NaN if not greeted) and ``overlap_s``: the numbers
        a person reads, where the reward mixes them."""
        user = episode.scenario.user_speech
        user_starts = first_speech(user)
        assert user_starts is not None
        agent = episode.agent_speech_in_window()
        opened = first_speech(clip(agent, 0.0, user_starts))
        return {
            "greeted": float(opened is not None),
            "opening_s": math.nan if opened is None else opened,
            "overlap_s": overlap_s(agent, user),
        }

    def mine(self, labels: ConversationLabels, user: int, rules: MiningRules) -> list[Segment]:
        """A conversation's opening when the partner (the agent's role) speaks first.

        The partner's first utterance starts within ``max_opening_s`` of the recording's start
        and before the user's first utterance, which lasts at least ``min_reply_s``. Window:
        from the recording's start to ``rules.tail_s`` after that reply.
        """
        user_channel, partner = labels.channels[user], labels.channels[1 - user]
        if not user_channel.utterances or not partner.utterances:
            return []
        opening, reply = partner.utterances[0], user_channel.utterances[0]
        if opening.span.start > self.max_opening_s or reply.span.start <= opening.span.start:
            return []
        if reply.duration < self.min_reply_s:
            return []
        window = labels.window(0.0, reply.span.end + rules.tail_s)
        evidence = {"y": list(opening.span), "x": list(reply.span)}
        return [Segment(self.name, user, window, evidence=evidence)]


def chatty_tiny_models(seed: int = 5, pad_bias: float = 4.0) -> MoshiModels:
    """A random tiny Moshi that pads now and then (see the module docstring).

    Untrained, it almost never samples PAD among 512 text tokens and would talk non-stop in every
    rollout; the bias on PAD's logit is an ordinary trainable parameter. (torch and moshi are
    imported here and in ``main``, so that importing the axis alone stays light.)
    """
    import torch

    from agents.moshi.models import tiny_models
    from fdenv.constants import PAD_ID

    models = tiny_models(seed=seed)
    bias = torch.zeros(models.text_card)
    bias[PAD_ID] = pad_bias
    models.lm.text_linear.bias = torch.nn.Parameter(bias)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--groups", type=int, default=2, help="scenarios per iteration")
    parser.add_argument("--group-size", type=int, default=8, help="rollouts per scenario")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--pad-bias", type=float, default=4.0, help="chatty model's PAD bias")
    parser.add_argument("--eval-episodes", type=int, default=16, help="held-out scenarios")
    parser.add_argument("--model", choices=["chatty", "base"], default="chatty")
    parser.add_argument("--out", type=Path, default=Path("runs/custom_axis"))
    args = parser.parse_args()

    import torch

    from agents.grpo.trainer import GRPOConfig, GRPOTrainer
    from agents.moshi.warmstart import tiny_base_models

    torch.set_num_threads(1)  # a tiny model's ops are too small to gain from more threads
    env_id = register_axis(Greeting)
    print(f"registered {env_id}")
    models = (
        tiny_base_models() if args.model == "base" else chatty_tiny_models(pad_bias=args.pad_bias)
    )
    config = GRPOConfig(
        axes=("Greeting",),
        iterations=args.iterations,
        groups=args.groups,
        group_size=args.group_size,
        lr=args.lr,
        warmup_iterations=0,
        env=EnvConfig(num_scenarios=64, scenario_seed=1),
        eval_episodes=args.eval_episodes,
    )
    trainer = GRPOTrainer(config, models, args.out)

    def report(when: str) -> None:
        result = trainer.evaluate()["Greeting"]
        means = ", ".join(
            f"{k} {np.nanmean(v) if np.isfinite(v).any() else math.nan:.2f}"
            for k, v in result.metrics.items()
        )
        print(f"held-out {when}: reward {result.mean:+.3f} [{result.low:+.3f}, {result.high:+.3f}]")
        print(f"  metrics: {means}")

    report("before")
    print(" iter  mean reward  flat groups   s")
    started = time.perf_counter()
    curve = []
    while trainer.iteration < config.iterations:
        record = trainer.train_iteration()
        curve.append(record["reward"])
        elapsed = time.perf_counter() - started
        print(
            f"{record['iteration']:5d}  {record['reward']:+11.3f}  {record['flat_groups']:11d}"
            f"  {elapsed:4.0f}"
        )
    report("after")
    trainer.save()
    window = max(1, min(3, len(curve) // 2))
    print(
        f"mean training reward, first {window} iterations: {np.mean(curve[:window]):+.3f}; "
        f"last {window}: {np.mean(curve[-window:]):+.3f}; checkpoint in {args.out}"
    )


if __name__ == "__main__":
    main()
