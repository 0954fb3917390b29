"""The machinery behind both environment classes: a batch of episodes played in lockstep.

:class:`FullDuplexEnv` runs it with one env and :class:`FullDuplexVectorEnv` with many, so the
two give the same results for the same seeds by construction. Cheap policies step millions of
frames, so a step is a handful of array operations over all envs, never a Python loop over
them: the audio of the streams in use lies in one :class:`FrameBank`, so the observations are
one gather, and the agents' tokens go into preallocated history buffers. Everything that looks
at a whole episode (intervals, rewards) runs once, at the episode's end.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

from fdenv.constants import FRAME_S, FRAME_SIZE, SAMPLE_RATE
from fdenv.episode import Episode
from fdenv.manifest import load_context
from fdenv.scenario import Scenario
from fdenv.timeline import Interval, intervals_to_mask
from fdenv.user.simulator import ReactiveUsers, UserSetup
from fdenv.voice import Voice


class Stream(NamedTuple):
    """A scenario laid out for playback: lead-in silence, the recording before the scenario
    (context, when asked for), the scenario's audio, zero padding to a whole frame.

    ``lead_in_s`` is everything before the scenario (silence and context). With a context,
    ``partner`` holds the partner's side of it from frame ``partner_frame`` on (whole frames, the
    first one partly silent), for policies that play the partner's part (see
    :meth:`agents.moshi.policy.MoshiPolicy.start`), and ``context`` the user's side that is
    played. The stream's samples are laid out on demand (:attr:`audio`, :meth:`write`): the
    engine writes them straight into its bank, without a copy per episode in between.
    """

    scenario: Scenario
    user_speaking: np.ndarray
    num_frames: int
    lead_in_s: float
    context_s: float = 0.0
    partner: np.ndarray | None = None
    partner_frame: int = 0
    context: np.ndarray | None = None
    user: UserSetup | None = None
    """A closed-loop episode: the simulated user who speaks (the scenario's audio is its clip
    store, not a recording); ``num_frames`` is then the episode's time limit."""

    @property
    def bank_key(self) -> tuple:
        """Streams with equal keys lay out the same frames (the same scenario object and audio,
        lead-in and context), so the frame bank loads them once. The bank keeps the stream
        while it holds its frames, so the ids stay those of live objects."""
        return (
            "stream",
            id(self.scenario),
            id(self.scenario.audio),
            self.lead_in_s,
            self.context_s,
        )

    @property
    def audio(self) -> np.ndarray:
        """The whole stream, ``num_frames * FRAME_SIZE`` samples (a new array on each call)."""
        audio = np.empty(self.num_frames * FRAME_SIZE, dtype=np.float32)
        self.write(audio)
        return audio

    def write(self, out: np.ndarray) -> None:
        """Lays the stream out in ``out``, ``num_frames * FRAME_SIZE`` samples, whatever it held."""
        start = round(self.lead_in_s * SAMPLE_RATE)
        silence = start - (0 if self.context is None else len(self.context))
        end = start + len(self.scenario.audio)
        out[:silence] = 0.0
        if self.context is not None:
            out[silence:start] = self.context
        out[start:end] = self.scenario.audio
        out[end:] = 0.0


def make_stream(scenario: Scenario, lead_in_s: float, context_s: float = 0.0) -> Stream:
    """Lays out ``scenario`` after ``lead_in_s`` of silence and, if it has a recorded context,
    the last ``context_s`` seconds of it (shortened so that the scenario starts on a frame)."""
    lead = round(lead_in_s * SAMPLE_RATE)
    if context_s < 0:
        raise ValueError(f"context_s must be >= 0 seconds, got {context_s}")
    context = 0
    user = partner = None
    if context_s > 0 and scenario.context is not None:
        user, partner = load_context(scenario.context)
        wanted = min(round(context_s * SAMPLE_RATE), len(user))
        context = max(0, (lead + wanted) // FRAME_SIZE * FRAME_SIZE - lead)
    start = lead + context
    num_frames = math.ceil((start + len(scenario.audio)) / FRAME_SIZE)
    speaking = intervals_to_mask(scenario.user_speech, num_frames, offset=start / SAMPLE_RATE)
    if context == 0:
        return Stream(scenario, speaking, num_frames, lead / SAMPLE_RATE)
    assert user is not None and partner is not None
    first = lead // FRAME_SIZE
    played = np.zeros(start - first * FRAME_SIZE, dtype=np.float32)
    played[lead - first * FRAME_SIZE :] = partner[len(partner) - context :]
    return Stream(
        scenario,
        speaking,
        num_frames,
        start / SAMPLE_RATE,
        context / SAMPLE_RATE,
        played,
        first,
        user[len(user) - context :].copy(),  # not a view: the whole recording may be long
    )


def closed_loop_stream(scenario: Scenario, user: UserSetup, lead_in_s: float) -> Stream:
    """A closed-loop episode of ``scenario`` (a plan's clip store): the lead-in rounded up to
    whole frames, since the user acts once per frame, and the plan's time limit after it."""
    lead_frames = math.ceil(round(lead_in_s * SAMPLE_RATE) / FRAME_SIZE)
    limit = math.ceil(user.plan.max_duration_s / FRAME_S - 1e-9)
    frames = lead_frames + limit
    return Stream(scenario, np.zeros(frames, bool), frames, lead_frames * FRAME_S, user=user)


class FrameBank:
    """The frames of the streams in use, one slot of rows per stream, and their user labels.

    Row ``base + k`` of a stream's slot is its frame ``k``, and the row after its last frame is
    silent and unlabelled: a finished env rests there, and row 0 is such a row for envs that
    have not started; so every env's observation is one gather whether it runs or not. Envs
    that play the same frames (a GRPO group, or envs that drew the same scenario: equal
    ``bank_key``) share a slot. A slot whose last env moves on stays loaded, idle, until a
    stream with other frames needs it (the least recently used idle slot goes first): over a
    pool of scenarios, a restart mostly finds its frames loaded and copies nothing, else it
    copies one stream, never the bank. The bank is rebuilt only to add slots (up to
    ``max_slots``, when none is free or idle) or to lengthen them for a longer stream, both by
    a growing factor, so a few times in a run.

    Loaded audio is made read-only: a scenario's audio changed in place would otherwise be
    replayed stale from its slot.
    """

    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self.slot_rows = 0
        self.audio = np.zeros((1, FRAME_SIZE), dtype=np.float32)
        self.user = np.zeros(1, dtype=bool)
        self._streams: list[Any] = []
        self._envs: list[int] = []
        self._slot_of: dict[Hashable, int] = {}  # bank_key -> slot, for every loaded slot
        self._idle: OrderedDict[int, None] = OrderedDict()  # loaded, no env: oldest first
        self._free: list[int] = []  # never loaded

    def base(self, slot: int) -> int:
        """The row of the slot's frame 0."""
        return 1 + slot * self.slot_rows

    def acquire(self, stream: Any) -> int:
        """The slot holding ``stream``'s frames, loading them if no slot holds them; one more
        env plays it. ``stream`` has ``num_frames``, ``user_speaking``, ``write(out)``, a
        hashable ``bank_key`` and the ``scenario`` whose audio it lays out."""
        slot = self._slot_of.get(stream.bank_key)
        if slot is None:
            slot = self._load(stream)
        self._idle.pop(slot, None)
        self._envs[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        """One env fewer plays the slot's stream; the last one leaves it loaded, idle."""
        self._envs[slot] -= 1
        if self._envs[slot] == 0:
            self._idle[slot] = None

    def _load(self, stream: Any) -> int:
        rows, slots = self.slot_rows, len(self._envs)
        if stream.num_frames + 1 > rows:
            rows = max(stream.num_frames + 1, rows * 5 // 4)
        if not self._free and not self._idle:
            slots = min(self.max_slots, max(1, 2 * slots))
        if (rows, slots) != (self.slot_rows, len(self._envs)):
            self._rebuild(rows, slots)
        if self._free:
            slot = self._free.pop()
        else:
            slot, _ = self._idle.popitem(last=False)
            del self._slot_of[self._streams[slot].bank_key]
        base = self.base(slot)
        stream.write(self.audio[base : base + stream.num_frames].reshape(-1))
        self.audio[base + stream.num_frames] = 0.0
        self.user[base : base + stream.num_frames] = stream.user_speaking
        self.user[base + stream.num_frames] = False
        stream.scenario.audio.flags.writeable = False
        self._streams[slot] = stream
        self._slot_of[stream.bank_key] = slot
        return slot

    def _rebuild(self, slot_rows: int, slots: int) -> None:
        """Makes the bank ``slots`` slots of ``slot_rows`` rows (neither fewer than now), moving
        the streams in use to their slots' new rows."""
        audio = np.zeros((1 + slots * slot_rows, FRAME_SIZE), dtype=np.float32)
        user = np.zeros(len(audio), dtype=bool)
        for slot, stream in enumerate(self._streams):
            if stream is not None:
                old, new = self.base(slot), 1 + slot * slot_rows
                audio[new : new + self.slot_rows] = self.audio[old : old + self.slot_rows]
                user[new : new + self.slot_rows] = self.user[old : old + self.slot_rows]
        added = range(len(self._envs), slots)
        self._free.extend(reversed(added))  # the lowest slot first: pop() takes from the end
        self._streams.extend(None for _ in added)
        self._envs.extend(0 for _ in added)
        self.audio, self.user, self.slot_rows = audio, user, slot_rows


class StepResult(NamedTuple):
    """Per-env facts about the frame just played (arrays of length ``num_envs``)."""

    t: np.ndarray
    user_speaking: np.ndarray
    agent_speaking: np.ndarray
    done: np.ndarray


class DuplexEngine:
    """Plays one stream per env; ``step`` advances the envs that are mid-episode.

    Per env it keeps the frame it is at, the bank row of that frame (``base + frame``; the
    resting row once the episode is over, where the frame stops too) and the agent's per-frame
    history. The history buffers have a spare column past the longest episode, so a step writes
    every env's column ``frame`` unconditionally: for an env that is not running that column
    is past its episode, never read. The single env steps and observes through
    :meth:`step_one` and :meth:`observe_one`, the same state in Python scalars.
    """

    def __init__(
        self,
        num_envs: int,
        voice: Voice,
        lead_in_s: float,
        word_starts: np.ndarray | None = None,
    ) -> None:
        if lead_in_s < 0:
            raise ValueError(f"lead_in_s must be >= 0, got {lead_in_s}")
        self.num_envs = num_envs
        self.voice = voice
        self.word_starts = word_starts
        """The tokenizer's word starts (``EnvConfig.word_starts``), handed to every episode."""
        self.lead_in_s = round(lead_in_s * SAMPLE_RATE) / SAMPLE_RATE
        self.streams: list[Stream | None] = [None] * num_envs
        self.frame = np.zeros(num_envs, dtype=np.int64)
        self.num_frames = np.zeros(num_envs, dtype=np.int64)
        self._lead = np.full(num_envs, self.lead_in_s)
        self._bank = FrameBank(num_envs)
        self.users: ReactiveUsers | None = None
        """The simulated users, once a closed-loop episode has started (then every env's)."""
        self._slot = np.full(num_envs, -1, dtype=np.int64)
        self._row = np.zeros(num_envs, dtype=np.int64)
        self._speaking = np.zeros((num_envs, 1), dtype=bool)
        self._text = np.zeros((num_envs, 1), dtype=np.int64)
        self._audio: np.ndarray | None = None  # [num_envs, columns, ...] once the voice makes audio
        self._envs = np.arange(num_envs)
        self._started_any = False
        self._finished: dict[int, Episode] = {}
        """Episodes built since they ended, until their env starts another."""
        voice.reset(num_envs)

    @property
    def running(self) -> np.ndarray:
        """Envs that are mid-episode."""
        return self.frame < self.num_frames

    def start(self, env: int, stream: Stream) -> None:
        """Begins an episode in ``env`` (several envs may share one stream)."""
        if (stream.user is None) == (self.users is not None) and self._started_any:
            raise ValueError(
                "an env plays either recorded scenarios or closed-loop ones, not both: give "
                "replay axes and closed-loop axes (Conversation, Selectivity) separate envs"
            )
        self._started_any = True
        if stream.user is not None:
            self._start_closed_loop(env, stream)
            return
        if self._slot[env] >= 0:
            self._bank.release(int(self._slot[env]))
        slot_rows = self._bank.slot_rows
        self._slot[env] = slot = self._bank.acquire(stream)
        self.streams[env] = stream
        self._finished.pop(env, None)
        self._lead[env] = stream.lead_in_s
        self.frame[env] = 0
        self.num_frames[env] = stream.num_frames
        self._row[env] = self._bank.base(slot)
        if self._bank.slot_rows != slot_rows:  # the bank was rebuilt: every slot moved
            rows = 1 + self._slot * self._bank.slot_rows + self.frame
            self._row = np.where(self._slot >= 0, rows, 0)
        if stream.num_frames >= self._speaking.shape[1]:
            self._widen(stream.num_frames + 1)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[env] = True
        self.voice.reset_envs(mask)

    def _start_closed_loop(self, env: int, stream: Stream) -> None:
        assert stream.user is not None
        if self.users is None:
            self._bank.max_slots = 2 * self.num_envs  # a plan and a made-up line per env
            self.users = ReactiveUsers(self.num_envs, self._bank, self._tokens_so_far)
            self._row = self.users.row
        self.streams[env] = stream
        self._finished.pop(env, None)
        self._lead[env] = stream.lead_in_s
        self.frame[env] = 0
        self.num_frames[env] = stream.num_frames
        self.users.start(env, stream.user, round(stream.lead_in_s / FRAME_S))
        if stream.num_frames >= self._speaking.shape[1]:
            self._widen(stream.num_frames + 1)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[env] = True
        self.voice.reset_envs(mask)

    def _tokens_so_far(self, env: int) -> np.ndarray:
        return self._text[env, : self.frame[env]].copy()

    def _widen(self, columns: int) -> None:
        extra = ((0, 0), (0, columns - self._speaking.shape[1]))
        self._speaking = np.pad(self._speaking, extra)
        self._text = np.pad(self._text, extra)
        if self._audio is not None:
            self._audio = np.pad(self._audio, extra + ((0, 0),) * (self._audio.ndim - 2))

    def observe(self) -> np.ndarray:
        """Each env's current frame of user audio, a new array ``[num_envs, 1920]`` (zeros for
        an env that is not running)."""
        return self._bank.audio.take(self._row, axis=0)

    def observe_one(self) -> np.ndarray:
        """:meth:`observe` for a one-env engine: its frame, a new array ``[1920]``."""
        return self._bank.audio[self._row[0]].copy()

    def step(self, actions: np.ndarray) -> StepResult:
        """Plays the agents' actions ``[num_envs, 9]`` into the current frame of running envs."""
        voiced = self.voice.step(actions)
        frame = self.frame
        running = frame < self.num_frames
        self._speaking[self._envs, frame] = voiced.speaking
        self._text[self._envs, frame] = actions[:, 0]
        if voiced.audio is not None:
            self._audio_buffer(voiced.audio)[self._envs, frame] = voiced.audio
        user = self._bank.user[self._row]
        t = frame * FRAME_S - self._lead
        if self.users is None:
            frame += running
            self._row += running
            return StepResult(
                t, user, voiced.speaking & running, running & (frame == self.num_frames)
            )
        ended = self.users.step(frame, voiced.speaking, running)
        self.num_frames[ended] = frame[ended] + 1
        frame += running
        done = running & (frame == self.num_frames)
        self.users.finish(done)
        return StepResult(t, user, voiced.speaking & running, done)

    def step_one(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        """:meth:`step` for a one-env engine, in Python scalars: ``(t, user_speaking,
        agent_speaking, done)`` for action ``[9]``. The same steps as :meth:`step` (the
        reference episodes hold both to the same numbers), without numpy's per-call cost,
        which dominates on arrays of one env. A closed-loop episode takes :meth:`step`."""
        if self.users is not None:
            if self.frame[0] == self.num_frames[0]:
                return float(self.frame[0] * FRAME_S - self._lead[0]), False, False, False
            r = self.step(action[None])
            return (
                float(r.t[0]),
                bool(r.user_speaking[0]),
                bool(r.agent_speaking[0]),
                bool(r.done[0]),
            )
        speaking, audio = self.voice.step_one(action)
        k, frames = int(self.frame[0]), int(self.num_frames[0])
        t = k * FRAME_S - float(self._lead[0])
        if k == frames:
            return t, False, False, False
        self._speaking[0, k] = speaking
        self._text[0, k] = action[0]
        if audio is not None:
            self._audio_buffer(audio[None])[0, k] = audio
        row = int(self._row[0])
        self.frame[0] = k + 1
        self._row[0] = row + 1
        return t, bool(self._bank.user[row]), speaking, k + 1 == frames

    def _audio_buffer(self, audio: np.ndarray) -> np.ndarray:
        """The agent audio history, made on the first step of a voice that makes audio."""
        if self._audio is None:
            shape = (self.num_envs, self._speaking.shape[1], *audio.shape[1:])
            self._audio = np.zeros(shape, dtype=audio.dtype)
        return self._audio

    def episode(self, env: int) -> Episode:
        """The episode in ``env`` so far (complete once it is done)."""
        return self.episodes([env])[0]

    def episodes(self, envs: Sequence[int]) -> list[Episode]:
        """The episodes in ``envs`` so far. Their speech intervals are found in one call of the
        voice (a voice that runs a VAD batches it), and a finished episode is built once: its
        VAD never runs twice."""
        played: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for env in envs:
            if self.streams[env] is None:
                raise RuntimeError("no episode has started; call reset() first")
            if env in self._finished or env in played:
                continue
            frames = int(self.frame[env])
            audio = None
            if self._audio is not None and frames > 0:
                audio = self._audio[env, :frames].reshape(-1).copy()
            played[env] = (self._speaking[env, :frames].copy(), audio)
        speeches = self.voice.speech_intervals_batch(list(played.values()))
        built = {}
        for (env, (speaking, audio)), speech in zip(played.items(), speeches, strict=True):
            stream = self.streams[env]
            assert stream is not None
            lead = stream.lead_in_s
            scenario, events, lines = stream.scenario, [], []
            if stream.user is not None:
                assert self.users is not None
                frames = len(speaking)
                scenario = self.users.realised(env, frames, scenario.id, scenario.axis)
                events, lines = self.users.record(env, frames)
            built[env] = Episode(
                scenario=scenario,
                lead_in_s=lead,
                agent_speaking=speaking,
                text_tokens=self._text[env, : len(speaking)].copy(),
                # Interval.shift(-lead) gives the same floats, at a method call per interval
                agent_speech=[Interval(a - lead, b - lead) for a, b in speech],
                agent_audio=audio,
                context_s=stream.context_s,
                events=events,
                user_lines=lines,
                word_starts=self.word_starts,
            )
            if self.frame[env] >= self.num_frames[env]:
                self._finished[env] = built[env]
        return [self._finished.get(env) or built[env] for env in envs]
