"""How the tiny model's audio path agrees with the text heuristic, and what it costs.

The warm-started tiny Moshi plays held-out episodes of each axis once; every episode is then
heard twice, from the same actions: by ``TextVoice`` (a word token held 0.4 s) and by the audio
path (its audio tokens decoded by the ``CodebookVoice`` fitted to its Mimi, then Silero VAD).
Printed per axis: the share of frames on which the two agree (speaking or not), the share of
frames each says the agent speaks, the mean axis reward under each and the share of episodes
whose reward is the same. Then the cost: the table lookup per step (a batch of 32 envs) and
Silero per second of episode audio, next to a tiny-Moshi step.

    NO_TORCH_COMPILE=1 python benchmarks/voice_agreement.py [--episodes 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from agents.moshi.codebook_voice import audio_voice
from agents.moshi.policy import MoshiPolicy
from agents.moshi.warmstart import tiny_base_models
from fdenv.agent import env_for
from fdenv.axes import PAPER_AXES
from fdenv.config import EnvConfig
from fdenv.constants import FRAME_S, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.play import play
from fdenv.timeline import Interval, mask_to_intervals
from fdenv.vector import FullDuplexVectorEnv
from fdenv.voice import TextVoice

HELD_OUT_SEED = 1000


def frame_mask(intervals: list[Interval], episode: Episode) -> np.ndarray:
    """Per stream frame: does any interval cover the frame's middle?"""
    middles = (np.arange(episode.num_frames) + 0.5) * FRAME_S - episode.lead_in_s
    mask = np.zeros(episode.num_frames, dtype=bool)
    for interval in intervals:
        mask |= (middles >= interval.start) & (middles < interval.end)
    return mask


def text_intervals(episode: Episode) -> list[Interval]:
    """What ``TextVoice`` says the agent's text tokens speak, in scenario time."""
    voice = TextVoice()
    voice.reset(1)
    actions = np.zeros((1, 9), dtype=np.int64)
    speaking = []
    for token in episode.text_tokens:
        actions[0, 0] = token
        speaking.append(voice.step(actions).speaking[0])
    intervals = mask_to_intervals(np.array(speaking), FRAME_S)
    return [Interval(i.start - episode.lead_in_s, i.end - episode.lead_in_s) for i in intervals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=32, help="held-out episodes per axis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = tiny_base_models()
    policy = MoshiPolicy(models)
    print(f"{args.episodes} held-out episodes per axis, warm-started tiny Moshi, one thread")
    print(
        f"{'axis':<17} {'frames agree':>12} {'text speaks':>11} {'audio speaks':>12} "
        f"{'reward text':>11} {'reward audio':>12} {'same reward':>11}"
    )
    audio_seconds = vad_seconds = whole_seconds = largest_shift = 0.0
    same_count = 0
    for axis_type in PAPER_AXES:
        axis = axis_type()
        config = env_for(
            policy,
            EnvConfig(num_scenarios=args.episodes, scenario_seed=HELD_OUT_SEED, voice="audio"),
        )
        env = FullDuplexVectorEnv(args.episodes, axis, autoreset_mode="Disabled", config=config)
        torch.manual_seed(0)
        played = play(policy, env, seed=0)
        agree, text_share, audio_share, text_rewards, audio_rewards = [], [], [], [], []
        for episode in played.episodes:
            started = time.perf_counter()  # Silero again, to time it
            pieces = config.voice.speech_intervals(episode.agent_speaking, episode.agent_audio)
            vad_seconds += time.perf_counter() - started
            started = time.perf_counter()
            whole = config.voice.vad.speech_intervals(episode.agent_audio)
            whole_seconds += time.perf_counter() - started
            audio_seconds += len(episode.agent_audio) / SAMPLE_RATE
            shift = max(
                [
                    abs(a - b)
                    for p, w in zip(pieces, whole, strict=False)
                    for a, b in zip(p, w, strict=True)
                ],
                default=0.0,
            )
            same_count += len(pieces) == len(whole) and shift < 0.05
            largest_shift = max(largest_shift, shift if len(pieces) == len(whole) else np.inf)
            by_text = text_intervals(episode)
            text_mask = frame_mask(by_text, episode)
            audio_mask = frame_mask(episode.agent_speech, episode)
            agree.append(np.mean(text_mask == audio_mask))
            text_share.append(text_mask.mean())
            audio_share.append(audio_mask.mean())
            text_rewards.append(
                axis.score(dataclasses.replace(episode, agent_speech=by_text)).reward
            )
            audio_rewards.append(axis.score(episode).reward)
        same = np.isclose(text_rewards, audio_rewards)
        print(
            f"{axis.name:<17} {np.mean(agree):>12.3f} {np.mean(text_share):>11.3f} "
            f"{np.mean(audio_share):>12.3f} {np.mean(text_rewards):>+11.3f} "
            f"{np.mean(audio_rewards):>+12.3f} {np.mean(same):>11.2f}"
        )
    voice = audio_voice(models)
    voice.reset(32)
    actions = np.zeros((32, 9), dtype=np.int64)
    actions[:, 1:] = np.random.default_rng(0).integers(0, models.audio_card, (32, 8))
    repeats = 2000
    started = time.perf_counter()
    for _ in range(repeats):
        voice.step(actions)
    step_ms = (time.perf_counter() - started) / repeats * 1e3
    print(f"table decoder step, 32 envs: {step_ms:.3f} ms")
    for name, seconds in (("stretches of sound", vad_seconds), ("whole episode", whole_seconds)):
        print(
            f"Silero on the {name}: {seconds / audio_seconds * 1e3:.1f} ms per second of "
            f"episode ({audio_seconds / seconds:.0f}x real time; "
            f"{seconds / audio_seconds * FRAME_S * 1e3:.2f} ms per 80 ms frame)"
        )
    episodes = args.episodes * len(PAPER_AXES)
    print(
        f"stretches vs whole episode: the same intervals (within 50 ms) in {same_count} of "
        f"{episodes} episodes; largest boundary shift {largest_shift * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
