"""Scripted agents: reference points for the reward tables and oracles for the tests.

Every agent follows :class:`fdenv.agent.Agent`: it acts on a batch of observations
``[N, 1920]`` and returns actions ``[N, 9]``, so :func:`fdenv.play.play` drives it on a
:class:`~fdenv.vector.FullDuplexVectorEnv` or a single :class:`~fdenv.env.FullDuplexEnv`
(``act_one`` steps a single env by hand). Only the text token carries meaning for
:class:`~fdenv.voice.TextVoice`; the audio tokens stay 0.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from fdenv.agent import Partners
from fdenv.audio.vad import EnergyVAD
from fdenv.constants import EPAD_ID, FRAME_S, FRAME_SIZE, NUM_CODEBOOKS, PAD_ID

WORD_ID = 4
"""Default word token: any id but PAD and EPAD is a word; 4 fits every vocabulary (Moshi, tiny)."""


class ScriptedAgent(ABC):
    """Base of the scripted agents: per-env state, started per batch and reset per env.

    Subclasses implement :meth:`_words`, which says which envs emit a word this frame.
    """

    def __init__(self, word_id: int = WORD_ID) -> None:
        if word_id in (PAD_ID, EPAD_ID) or word_id < 0:
            raise ValueError(f"word_id must be a word token (not PAD {PAD_ID} or EPAD {EPAD_ID})")
        self.word_id = word_id
        self.start(1)

    def start(self, num_envs: int, partners: Partners | None = None) -> None:
        """Prepares state for ``num_envs`` envs at the start of their episodes (a scripted agent
        does not play a context's partner, so ``partners`` is not used)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs

    def reset(self, mask: np.ndarray) -> None:
        """Restarts the envs where ``mask`` is true (their episodes start over).

        Stateless agents have nothing to forget, but a wrong mask is still a caller's bug.
        """
        self._forget(self._checked(mask))

    def stop(self) -> None:  # noqa: B027 (nothing to free: the state is a few arrays)
        """Ends the batch."""

    def _checked(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != (self.num_envs,) or mask.dtype != bool:
            raise ValueError(f"mask must be a bool array of shape ({self.num_envs},)")
        return mask

    def _forget(self, mask: np.ndarray) -> None:  # noqa: B027 (stateless agents forget nothing)
        """Clears the per-env state of the envs where ``mask`` is true (none by default)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Observations ``[N, 1920]`` -> actions ``[N, 9]`` int64."""
        obs = np.asarray(obs)
        if obs.shape != (self.num_envs, FRAME_SIZE):
            raise ValueError(
                f"expected observations of shape ({self.num_envs}, {FRAME_SIZE}), got {obs.shape}"
                "; call start(num_envs) for another batch size"
            )
        actions = np.zeros((self.num_envs, 1 + NUM_CODEBOOKS), dtype=np.int64)
        actions[:, 0] = np.where(self._words(obs), self.word_id, PAD_ID)
        return actions

    def act_one(self, obs: np.ndarray) -> np.ndarray:
        """A single env's observation ``[1920]`` -> its action ``[9]`` (needs ``start(1)``)."""
        return self.act(np.asarray(obs)[None])[0]

    @abstractmethod
    def _words(self, obs: np.ndarray) -> np.ndarray:
        """Which envs say a word in this frame, given its observations (advances the state)."""


class SilentAgent(ScriptedAgent):
    """Never speaks: perfect on pauses, the full no-answer latency on turns and interruptions."""

    def _words(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), dtype=bool)


class AlwaysTalkAgent(ScriptedAgent):
    """Speaks without end: takes every pause and never yields."""

    def _words(self, obs: np.ndarray) -> np.ndarray:
        return np.ones(len(obs), dtype=bool)


def _frames(seconds: float) -> int:
    """Frames it takes to cover ``seconds`` (the tolerance keeps 0.32 s at exactly 4 frames)."""
    return max(math.ceil(seconds / FRAME_S - 1e-9), 1)


@dataclass(frozen=True)
class RuleConfig:
    """The hand-set timing of :class:`RuleAgent`; durations in seconds, rounded up to frames."""

    vad_threshold_db: float = -45.0
    """Frame RMS above which the user counts as speaking. Clean synthetic speech sits far above it;
    -45 dB rather than EnergyVAD's -40 dB keeps quiet consonants from splitting words into
    silences long enough to set off a backchannel."""
    answer_after_s: float = 1.1
    """User silence after which the agent takes the turn (14 frames, 1.12 s). Mid-utterance pauses
    last up to 1 s, so anything shorter takes over pauses (pause reward -1) and answers between a
    backchannel scenario's sentences (a takeover); every 80 ms more is 80 ms of turn-taking
    latency and of interruption latency."""
    answer_s: float = 2.5
    """How long an answer lasts before the agent falls silent again, unless it yields sooner."""
    word_every: int = 5
    """Frames between the words of an answer; with TextVoice's 5-frame hold, unbroken speech."""
    backchannel_after_s: float = 0.3
    """User silence after which the agent says one backchannel word (4 frames, 0.32 s): true
    backchannels begin 0.05-0.25 s into a gap and match within 1 s, and gaps last 0.35 s or more."""
    min_speech_before_bc_s: float = 1.0
    """User speech needed since the agent last spoke before it backchannels, so a short word or a
    noise burst does not earn one."""

    def __post_init__(self) -> None:
        for name in ("answer_after_s", "answer_s", "backchannel_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RuleConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.min_speech_before_bc_s < 0:
            raise ValueError(
                f"RuleConfig.min_speech_before_bc_s must be >= 0, got {self.min_speech_before_bc_s}"
            )
        if self.word_every < 1:
            raise ValueError(f"RuleConfig.word_every must be >= 1, got {self.word_every}")


class RuleAgent(ScriptedAgent):
    """Listens with a frame-energy VAD; answers after a long silence, backchannels in short ones,
    and yields when the user speaks over it.

    The agent hears frame ``k`` before it speaks in frame ``k``, so a rule that fires when the
    silence reaches ``n`` frames speaks in the ``n``-th silent frame. It answers only once the user
    has spoken since its last answer, so the silent lead-in and its own pauses never prompt one.
    """

    def __init__(self, config: RuleConfig = RuleConfig(), word_id: int = WORD_ID) -> None:
        self.config = config
        self.vad = EnergyVAD(config.vad_threshold_db)
        self._answer_after = _frames(config.answer_after_s)
        self._answer_len = _frames(config.answer_s)
        self._bc_after = _frames(config.backchannel_after_s)
        self._min_speech = math.ceil(config.min_speech_before_bc_s / FRAME_S - 1e-9)
        super().__init__(word_id)

    def start(self, num_envs: int, partners: Partners | None = None) -> None:
        super().start(num_envs, partners)
        # consecutive silent user frames, this one included
        self._silence = np.zeros(num_envs, dtype=np.int64)
        # user speech frames since the agent last spoke (answer or backchannel)
        self._speech = np.zeros(num_envs, dtype=np.int64)
        # the user has spoken since the agent's last answer
        self._owes_answer = np.zeros(num_envs, dtype=bool)
        # frames into the current answer, -1 when not answering
        self._answer_frame = np.full(num_envs, -1, dtype=np.int64)

    def _forget(self, mask: np.ndarray) -> None:
        self._silence[mask] = 0
        self._speech[mask] = 0
        self._owes_answer[mask] = False
        self._answer_frame[mask] = -1

    @property
    def answering(self) -> np.ndarray:
        """Envs in the middle of an answer."""
        return self._answer_frame >= 0

    def _words(self, obs: np.ndarray) -> np.ndarray:
        user = self.vad.frame_activity(obs)
        self._silence = np.where(user, 0, self._silence + 1)
        self._speech += user
        self._owes_answer |= user
        self._answer_frame[user] = -1  # yield: the user speaks over the agent

        start = self._owes_answer & (self._silence >= self._answer_after)
        self._answer_frame[start] = 0
        self._owes_answer[start] = False
        self._speech[start] = 0

        backchannel = (
            (self._silence == self._bc_after) & (self._speech >= self._min_speech) & ~self.answering
        )
        self._speech[backchannel] = 0

        answering = self.answering
        words = backchannel | (answering & (self._answer_frame % self.config.word_every == 0))
        self._answer_frame[answering] += 1
        self._answer_frame[self._answer_frame >= self._answer_len] = -1
        return words


class AlwaysYieldAgent(ScriptedAgent):
    """Talks whenever the user has been silent for ``answer_after_s`` and stops at the first
    frame of any sound in the user channel: the agent that yields to everything, backchannels,
    side talk and background speech included (tau-voice's leaderboard finds this in deployed
    systems: yield rate 1.00, backchannel selectivity near 0). It never backchannels and keeps
    talking as long as the user lets it."""

    def __init__(
        self,
        answer_after_s: float = RuleConfig.answer_after_s,
        vad_threshold_db: float = RuleConfig.vad_threshold_db,
        word_id: int = WORD_ID,
    ) -> None:
        if answer_after_s <= 0:
            raise ValueError(f"answer_after_s must be > 0, got {answer_after_s}")
        self.vad = EnergyVAD(vad_threshold_db)
        self._after = _frames(answer_after_s)
        self._every = RuleConfig.word_every
        super().__init__(word_id)

    def start(self, num_envs: int, partners: Partners | None = None) -> None:
        super().start(num_envs, partners)
        self._silence = np.zeros(num_envs, dtype=np.int64)

    def _forget(self, mask: np.ndarray) -> None:
        self._silence[mask] = 0

    def _words(self, obs: np.ndarray) -> np.ndarray:
        user = self.vad.frame_activity(obs)
        self._silence = np.where(user, 0, self._silence + 1)
        talking = self._silence >= self._after
        return talking & ((self._silence - self._after) % self._every == 0)
