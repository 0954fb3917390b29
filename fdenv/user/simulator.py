"""ReactiveUsers: simulated users that hear the agent, one per env, stepped together.

Each 80 ms the user decides what it says in the next frame from what it heard the agent do
(the voice's speaking state). The hot path is a handful of array operations over all envs:
frame counters of agent talk and silence and of overlap, and one comparison per trigger
(the end of a line, enough overlap to yield, an agent onset, a deadline, a long enough
silence). Only the envs where a trigger fires go through Python, where the
:class:`~fdenv.user.policy.UserPolicy` decides; most frames none does.

The user speaks by pointing at rows of the engine's frame bank, where its plan's lines were
synthesised once (:mod:`fdenv.user.store`), so an observation stays one gather. A GRPO group
shares a plan, its traits and its seed: its rollouts differ only through the agent's actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fdenv.constants import FRAME_S, FRAME_SIZE
from fdenv.scenario import Scenario, Utterance, Word
from fdenv.timeline import Interval
from fdenv.user.config import UserTraits
from fdenv.user.events import PlayedLine, UserEvent
from fdenv.user.plan import Line, Turn, UserPlan
from fdenv.user.policy import UserContext, UserPolicy
from fdenv.user.store import ClipStore, StoredLine, lines_scenario, stored_lines


class Bank(Protocol):
    """What the users need of the engine's :class:`fdenv.engine.FrameBank`."""

    slot_rows: int

    def acquire(self, stream: ClipStore) -> int: ...
    def release(self, slot: int) -> None: ...
    def base(self, slot: int) -> int: ...


IDLE, SPEAK, PAUSE, WAIT, LISTEN, HELD, DONE = range(7)
"""What a user is doing: waiting for the lead-in to end, saying a line, pausing mid-turn,
waiting for an answer, listening to one, waiting to take up a turn it was cut off in, done."""

_NEVER = -(2**31)
"""A count no counter equals (counters start at 0)."""
_LATER = 2**31 - 1
"""A count no counter reaches."""
_INTERRUPTING = ("turn", "reprompt")
"""Lines during which an agent onset is a barge-in and talking over makes the user yield."""
_EVENT_OF = {
    "backchannel": "user_backchannel",
    "side_talk": "user_side_talk",
    "background": "background_speech",
    "interruption": "user_interruption",
}


@dataclass(frozen=True)
class UserSetup:
    """What a closed-loop episode starts from; every env of a GRPO group gets the same one."""

    plan: UserPlan
    traits: UserTraits
    seed: int
    policy: UserPolicy
    store: ClipStore
    """The plan's lines laid out for the frame bank (:func:`fdenv.user.store.store_scenario`)."""
    lines: dict[Line, StoredLine]


class UserPolicyError(RuntimeError):
    """A user policy raised; the message names the policy and the decision."""


@dataclass
class _Where:
    """Where a line being said lies in the bank and in its store."""

    line: Line
    slot: int
    stored: StoredLine
    store: Scenario
    start_frame: int


@dataclass
class _State:
    """One env's episode, as the Python side of the user knows it."""

    setup: UserSetup
    context: UserContext
    lead_frames: int
    slots: list[int]
    saying: _Where | None = None
    cut: bool = False
    pending: tuple[Line, ...] = ()
    """The rest of the current turn's parts, said after the pause."""
    pause_frames: int = 0
    resume: tuple[Line, ...] = ()
    """What the user says when it takes the floor back after being cut off."""
    answering: Turn | None = None
    overlay: Line | None = None
    watching: str = ""
    """``"interruption"`` or ``"talk_through"`` while an overlap waits for the agent to stop."""
    turn_ended: float = 0.0
    """When the user's last turn (or re-prompt) ended, in seconds."""
    waiting_since: int = 0
    """The frame the user started waiting for an answer in."""
    onset: float = 0.0
    """When the agent started what may be its answer."""
    heard_answer: bool = False
    """The agent has talked long enough since ``onset`` to have answered."""
    turn: int = -1
    played: list[tuple[PlayedLine, _Where]] = field(default_factory=list)
    dynamic: dict[Line, Scenario] = field(default_factory=dict)


class ReactiveUsers:
    """The users of ``num_envs`` envs; ``row`` is each env's bank row for the next frame."""

    def __init__(
        self,
        num_envs: int,
        bank: Bank,
        agent_tokens: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self.bank = bank
        self.agent_tokens = agent_tokens
        """Env -> the agent's text tokens so far, shown to the policy at decision points."""
        self.row = np.zeros(num_envs, dtype=np.int64)
        n = num_envs
        self.active = np.zeros(n, dtype=bool)
        self.phase = np.zeros(n, dtype=np.int8)
        self.stop_row = np.full(n, -1, dtype=np.int64)
        self.overlap = np.zeros(n, dtype=np.int32)
        self.yield_after = np.full(n, _NEVER, dtype=np.int32)
        self.yieldable = np.zeros(n, dtype=bool)
        self.agent_run = np.zeros(n, dtype=np.int32)
        self.agent_quiet = np.zeros(n, dtype=np.int32)
        self.answered = np.zeros(n, dtype=np.int32)
        """Frames the agent has talked since it started answering (a burst up to the user's
        ``answer`` frames is a backchannel, not an answer)."""
        self.answer = np.full(n, _NEVER, dtype=np.int32)
        self.deadline = np.full(n, -1, dtype=np.int64)
        self.gap = np.full(n, _NEVER, dtype=np.int32)
        self.overlay_at = np.full(n, _LATER, dtype=np.int32)
        """Frames of answer after which the planned overlap comes (while the agent talks)."""
        self.watch_stop = np.full(n, _NEVER, dtype=np.int32)
        self._states: list[_State | None] = [None] * n

    # -- episodes ---------------------------------------------------------------------------

    def start(self, env: int, setup: UserSetup, lead_frames: int) -> None:
        """Begins env's episode: silence for ``lead_frames``, then the plan's first turn."""
        self.release(env)
        slot = self._acquire(setup.store)
        context = UserContext(setup.plan, setup.traits, np.random.default_rng(setup.seed))
        self._states[env] = _State(setup, context, lead_frames, [slot])
        self.active[env] = True
        self.phase[env] = IDLE
        self.row[env] = 0
        self.stop_row[env] = -1
        self.overlap[env] = 0
        self.yield_after[env] = setup.traits.yield_after
        self.yieldable[env] = False
        self.agent_run[env] = 0
        self.agent_quiet[env] = 0
        self.answered[env] = 0
        self.answer[env] = setup.traits.answer
        self.deadline[env] = lead_frames
        self.gap[env] = setup.traits.answer_gap
        self.overlay_at[env] = _LATER
        self.watch_stop[env] = _NEVER

    def finish(self, done: np.ndarray) -> None:
        """The envs in ``done`` played their last frame: they rest on the silent row."""
        if done.any():
            self.active[done] = False
            self.row[done] = 0

    def release(self, env: int) -> None:
        """Frees env's rows in the bank (its episode's record stays readable)."""
        state = self._states[env]
        if state is not None:
            for slot in state.slots:
                self.bank.release(slot)
            state.slots = []
        self.active[env] = False
        self.row[env] = 0

    def _acquire(self, stream: ClipStore) -> int:
        """A bank slot holding ``stream``; if the bank had to grow, every row moves with it."""
        rows_before = self.bank.slot_rows
        slot = self.bank.acquire(stream)
        if self.bank.slot_rows != rows_before:
            self._rebase(rows_before)
        return slot

    def _rebase(self, old_rows: int) -> None:
        for env, state in enumerate(self._states):
            if state is None or state.saying is None or not self.active[env]:
                continue
            old_base = 1 + state.saying.slot * old_rows
            shift = self.bank.base(state.saying.slot) - old_base
            if self.phase[env] == SPEAK:
                self.row[env] += shift
                self.stop_row[env] += shift

    # -- the frame loop ---------------------------------------------------------------------

    def step(self, frame: np.ndarray, speaking: np.ndarray, running: np.ndarray) -> np.ndarray:
        """Hears the agent in ``frame`` (``speaking``) and sets ``row`` to each user's next
        frame; returns the envs whose user ended the conversation (this frame is their last)."""
        act = self.active & running
        heard = speaking & act
        self.agent_run = np.where(heard, self.agent_run + 1, 0)
        self.agent_quiet = np.where(heard, 0, self.agent_quiet + 1)
        talking = act & (self.phase == SPEAK)
        self.answered += heard & (self.phase == LISTEN)
        self.row += talking
        self.overlap += heard & talking & self.yieldable
        upcoming = frame + 1
        due = talking & ((self.row == self.stop_row) | (self.overlap == self.yield_after))
        waiting_out = (self.phase == LISTEN) | (self.phase == HELD)
        due |= act & (
            (self.agent_run == 1)
            | (self.deadline == upcoming)
            | (waiting_out & (self.agent_quiet >= self.gap))
            | (heard & (self.answered >= self.overlay_at))
            | (self.agent_quiet == self.watch_stop)
            | (self.answered == self.answer)
        )
        ended = np.zeros(len(due), dtype=bool)
        for env in np.flatnonzero(due).tolist():
            ended[env] = self._decide(env, int(upcoming[env]))
        return ended

    def _decide(self, env: int, j: int) -> bool:
        """Env's user decides what it says in frame ``j``; True when the conversation is over."""
        state = self._states[env]
        assert state is not None
        phase = int(self.phase[env])
        if self.agent_run[env] == 1:
            self._agent_onset(env, state, phase, j)
            phase = int(self.phase[env])
        if phase == LISTEN and self.answered[env] == self.answer[env] and not state.heard_answer:
            self._answer_heard(env, state)
        if self.agent_quiet[env] == self.watch_stop[env]:
            self._agent_stopped(env, state, j)
        if phase == SPEAK:
            return self._speaking(env, state, j)
        if self.deadline[env] == j:
            self.deadline[env] = -1
            return self._deadline(env, state, phase, j)
        talking = self.agent_run[env] > 0
        if phase == LISTEN and talking and self.answered[env] >= self.overlay_at[env]:
            self.overlay_at[env] = _LATER
            assert state.overlay is not None
            line, state.overlay = state.overlay, None
            t = self._time(state, j)
            cause = f"after {self.answered[env] * FRAME_S:.2f} s of the agent's answer"
            self._log(state, t, _EVENT_OF[line.kind], cause)
            if line.kind == "interruption":
                state.turn += 1
                state.watching = "interruption"
            else:
                state.watching = "talk_through"
            self.watch_stop[env] = state.setup.traits.stop
            return self._say(env, state, line, j)
        if self.agent_quiet[env] >= self.gap[env]:
            if phase == LISTEN and not state.heard_answer:  # a backchannel: wait on
                self.phase[env] = WAIT
                waited = state.waiting_since + state.setup.traits.reprompt_after
                self.deadline[env] = max(j + 1, waited)
                return False
            if phase == LISTEN:
                return self._next_turn(env, state, j)
            if phase == HELD:
                t = self._time(state, j)
                self._log(state, t, "user_resume", "the agent stopped talking")
                lines, state.resume = state.resume, ()
                state.pending = lines[1:]
                return self._say(env, state, lines[0], j)
        return False

    def _agent_onset(self, env: int, state: _State, phase: int, j: int) -> None:
        t = self._time(state, j - 1)
        saying = state.saying.line.kind if state.saying is not None else ""
        if (phase == SPEAK and saying in _INTERRUPTING) or phase == PAUSE:
            where = "in the user's mid-turn pause" if phase == PAUSE else "while the user speaks"
            self._log(state, t, "agent_barge_in", where)
        elif phase == WAIT:
            state.onset = t
            self._listen(env, state)

    def _agent_stopped(self, env: int, state: _State, j: int) -> None:
        self.watch_stop[env] = _NEVER
        stopped = j - int(state.setup.traits.stop)
        t = self._time(state, stopped)
        if state.watching == "interruption":
            self._log(state, t, "agent_yield", "the user cut in")
        else:
            self._log(state, t, "agent_stops", "an overlap it should have talked through")
        state.watching = ""

    def _speaking(self, env: int, state: _State, j: int) -> bool:
        where = state.saying
        assert where is not None
        if self.row[env] == self.stop_row[env]:
            return self._line_done(env, state, j)
        if self.yieldable[env] and self.overlap[env] == self.yield_after[env]:
            t = self._time(state, j)
            talked = f"talked over for {self.overlap[env] * FRAME_S:.2f} s"
            self.yieldable[env] = False  # decided once per line
            if self._ask("finishes_when_talked_over", env, state, where.line):
                self._log(state, t, "user_continues", talked)
                return False
            said = j - where.start_frame
            end = next((e for e in where.stored.word_ends if e >= said), where.stored.frames)
            if end < where.stored.frames:
                self._log(state, t, "user_yield", talked)
                state.cut = True
                self.stop_row[env] = self.row[env] + (end - said)
                if end == said:
                    return self._line_done(env, state, j)
        return False

    def _deadline(self, env: int, state: _State, phase: int, j: int) -> bool:
        t = self._time(state, j)
        if phase == IDLE:
            return self._next_turn(env, state, j)
        if phase == PAUSE:
            lines, state.pending = state.pending, ()
            if self.agent_quiet[env] < self.gap[env]:  # cut off in its pause: wait for the agent
                state.resume = lines
                self.phase[env] = HELD
                return False
            state.pending = lines[1:]
            return self._say(env, state, lines[0], j)
        if phase == WAIT:
            context = state.context
            line = self._ask("reprompt", env, state)
            if line is None:
                self._log(state, t, "user_gives_up", f"{context.reprompts} re-prompts unanswered")
                return self._next_turn(env, state, j)
            context.reprompts += 1
            self._log(state, t, "user_reprompt", "no answer")
            return self._say(env, state, line, j)
        return False

    # -- actions ------------------------------------------------------------------------------

    def _say(self, env: int, state: _State, line: Line, j: int) -> bool:
        for slot in state.slots[1:]:  # the last made-up line is over: its rows can go
            self.bank.release(slot)
        del state.slots[1:]
        stored = state.setup.lines.get(line)
        slot, store = state.slots[0], state.setup.store.scenario
        if stored is None:
            slot, stored, store = self._dynamic(state, line)
        base = self.bank.base(slot) + stored.offset
        state.saying = _Where(line, slot, stored, store, j)
        state.cut = False
        state.context.said.append(line)
        self.phase[env] = SPEAK
        self.row[env] = base
        self.stop_row[env] = base + stored.frames
        self.overlap[env] = 0
        self.yieldable[env] = line.kind in _INTERRUPTING
        return False

    def _dynamic(self, state: _State, line: Line) -> tuple[int, StoredLine, Scenario]:
        """A line the plan does not hold (a policy made it up): synthesised once per episode
        into a bank slot of its own."""
        scenario = state.dynamic.get(line)
        if scenario is None:
            scenario = lines_scenario([line], "dynamic", "user", {})
            state.dynamic[line] = scenario
        slot = self._acquire(ClipStore(scenario))
        state.slots.append(slot)
        return slot, stored_lines(scenario, [line])[line], scenario

    def _line_done(self, env: int, state: _State, j: int) -> bool:
        where = state.saying
        assert where is not None
        line, cut = where.line, state.cut
        played = self._played(state, where, j, cut)
        state.played.append((played, where))
        t = played.end  # the end of its sound, inside the frame just played
        state.saying, state.cut = None, False
        self.row[env] = 0
        self.stop_row[env] = -1
        self.yieldable[env] = False
        if cut:
            state.resume = (line, *state.pending)
            state.pending = ()
            self.phase[env] = HELD
            return False
        if line.kind == "turn" and state.pending:
            self._log(state, t, "user_pause", "a mid-sentence pause")
            self.phase[env] = PAUSE
            self.deadline[env] = j + state.pause_frames
            return False
        if line.kind in ("turn", "reprompt", "interruption"):
            cause = {"turn": "its turn is said", "reprompt": "it re-prompted"}.get(
                line.kind, "it cut in"
            )
            self._log(state, t, "user_turn_end", cause)
            state.turn_ended = t
            if line.kind == "interruption":
                state.answering = None
            state.waiting_since = j
            if self.agent_run[env] > 0:  # the agent is already talking: maybe its answer
                state.onset = t
                self._listen(env, state, int(self.agent_run[env]))
                return False
            self.phase[env] = WAIT
            self.deadline[env] = j + state.setup.traits.reprompt_after
            return False
        self.phase[env] = LISTEN  # an overlap the agent should talk through is over
        return False

    def _listen(self, env: int, state: _State, talked: int = 1) -> None:
        """The agent started talking after the user's turn: an answer once it has talked for
        the user's ``answer`` frames (:meth:`_answer_heard`)."""
        self.phase[env] = LISTEN
        self.deadline[env] = -1
        self.answered[env] = talked
        state.heard_answer = False
        self.overlay_at[env] = _LATER
        if talked >= self.answer[env]:
            self._answer_heard(env, state)

    def _answer_heard(self, env: int, state: _State) -> None:
        state.heard_answer = True
        latency = state.onset - state.turn_ended
        cause = (
            f"{latency:.2f} s after the user's turn ended"
            if latency > 0
            else "the agent was already talking when the user's turn ended"
        )
        self._log(state, state.onset, "agent_response", cause)
        state.context.reprompts = 0
        plan = self._ask("during_answer", env, state, state.answering)
        state.answering = None  # one overlay per answer
        if plan is None:
            self.overlay_at[env] = _LATER
            return
        state.overlay, after = plan
        self.overlay_at[env] = max(int(after), int(self.answered[env]) + 1)

    def _next_turn(self, env: int, state: _State, j: int) -> bool:
        turn = self._ask("next_turn", env, state)
        t = self._time(state, j)
        if turn is None:
            self._log(state, t, "episode_end", "the user has nothing more to say")
            self.phase[env] = DONE
            self.active[env] = False
            return True
        state.context.turns_taken += 1
        state.context.reprompts = 0
        state.turn += 1
        state.answering = turn
        state.pending = turn.parts[1:]
        state.pause_frames = max(1, round(turn.pause_s / FRAME_S))
        self._log(state, t, "user_turn_start", f"turn {state.context.turns_taken}")
        return self._say(env, state, turn.parts[0], j)

    # -- helpers ------------------------------------------------------------------------------

    def _ask(self, decision: str, env: int, state: _State, *args: object):
        policy = state.setup.policy
        if self.agent_tokens is not None:
            state.context.agent_tokens = self.agent_tokens(env)
        try:
            return getattr(policy, decision)(state.context, *args)
        except Exception as error:
            raise UserPolicyError(
                f"user policy {policy!r} raised in {decision}(): {type(error).__name__}: {error}"
            ) from error

    @staticmethod
    def _time(state: _State, frame: int) -> float:
        return (frame - state.lead_frames) * FRAME_S

    @staticmethod
    def _log(state: _State, t: float, kind: str, cause: str) -> None:
        event = UserEvent(round(t, 6), kind, cause, state.turn)
        state.context.events.append(event)

    # -- records ------------------------------------------------------------------------------

    def _played(self, state: _State, where: _Where, end_frame: int, cut: bool) -> PlayedLine:
        start = self._time(state, where.start_frame)
        end = min(self._time(state, end_frame), start + where.stored.duration_s)
        line = where.line
        return PlayedLine(line.kind, line.text, round(start, 6), round(end, 6), cut, state.turn)

    def _lines(self, state: _State, frames: int) -> list[tuple[PlayedLine, _Where]]:
        """The lines said so far; one being said counts up to frame ``frames``."""
        played = list(state.played)
        if state.saying is not None and frames > state.saying.start_frame:
            played.append((self._played(state, state.saying, frames, True), state.saying))
        return played

    def record(self, env: int, frames: int) -> tuple[list[UserEvent], list[PlayedLine]]:
        """Env's events and lines after ``frames`` frames; an episode stopped by its time
        limit says so."""
        state = self._states[env]
        if state is None:
            raise RuntimeError(f"env {env} has not started a closed-loop episode")
        events = list(state.context.events)
        if not any(e.kind == "episode_end" for e in events):
            t = round(self._time(state, frames), 6)
            events.append(UserEvent(t, "episode_end", "time limit", state.turn))
        return events, [played for played, _ in self._lines(state, frames)]

    def realised(self, env: int, frames: int, scenario_id: str, axis: str) -> Scenario:
        """What the user said in env's episode as a scenario (scenario time, lead-in cut): the
        audio it played, its speech and transcripts as they happened."""
        state = self._states[env]
        if state is None:
            raise RuntimeError(f"env {env} has not started a closed-loop episode")
        rate = round(FRAME_SIZE / FRAME_S)
        length = max(1, (frames - state.lead_frames) * FRAME_SIZE)
        audio = np.zeros(length, dtype=np.float32)
        speech, transcripts = [], []
        for line, where in self._lines(state, frames):
            begin = (where.start_frame - state.lead_frames) * FRAME_SIZE
            offset = where.stored.offset * FRAME_SIZE
            count = min(round((line.end - line.start) * rate), length - begin)
            audio[begin : begin + count] = where.store.audio[offset : offset + count]
            if not where.line.is_user_speech or line.end <= line.start:
                continue
            speech.append(Interval(line.start, line.end))
            utterance = where.store.transcripts[where.stored.index]
            shift = line.start - utterance.start
            words = tuple(
                Word(w.text, w.start + shift, w.end + shift)
                for w in utterance.words
                if w.end + shift <= line.end + 1e-6
            )
            transcripts.append(Utterance("user", line.text, line.start, line.end, words))
        events, played = self.record(env, frames)
        ends = [e.t for e in events if e.kind == "user_turn_end"]
        cut_in = next((p for p in played if p.kind == "interruption"), None)
        return Scenario(
            id=scenario_id,
            axis=axis,
            audio=audio,
            user_speech=speech,
            turn_end=ends[-1] if ends else None,
            interruption=None if cut_in is None else Interval(cut_in.start, cut_in.end),
            transcripts=transcripts,
            source={
                "kind": "closed_loop",
                "plan": state.setup.plan.to_json(),
                "traits": state.setup.traits.to_json(),
                "seed": state.setup.seed,
                "policy": repr(state.setup.policy),
            },
            plan=state.setup.plan,
        )
