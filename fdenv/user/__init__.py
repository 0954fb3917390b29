"""The simulated user of the closed-loop environments: it hears the agent every 80 ms and
reacts (waits, re-prompts, yields, backchannels, cuts in); see docs/closed_loop.md."""

from fdenv.user.config import UserConfig, UserTraits
from fdenv.user.events import EVENT_KINDS, PlayedLine, UserEvent
from fdenv.user.plan import Line, Turn, UserPlan
from fdenv.user.policy import UserContext, UserPolicy
from fdenv.user.simulator import ReactiveUsers, UserPolicyError, UserSetup

__all__ = [
    "EVENT_KINDS",
    "Line",
    "PlayedLine",
    "ReactiveUsers",
    "Turn",
    "UserConfig",
    "UserContext",
    "UserEvent",
    "UserPlan",
    "UserPolicy",
    "UserPolicyError",
    "UserSetup",
    "UserTraits",
]
