"""The paper's four interactivity axes; :class:`Axis` is the base for new ones."""

from fdenv.axes.backchannel import Backchannel
from fdenv.axes.base import Axis, AxisScore, JudgedExchange
from fdenv.axes.closed_loop import ClosedLoopAxis
from fdenv.axes.conversation import Conversation
from fdenv.axes.pause_handling import PauseHandling
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.axes.selectivity import Selectivity
from fdenv.axes.turn_taking import TurnTaking
from fdenv.axes.user_interruption import UserInterruption

PAPER_AXES: tuple[type[Axis], ...] = (PauseHandling, TurnTaking, Backchannel, UserInterruption)
CLOSED_LOOP_AXES: tuple[type[Axis], ...] = (Conversation, Selectivity)

__all__ = [
    "CLOSED_LOOP_AXES",
    "PAPER_AXES",
    "AgentLine",
    "Axis",
    "AxisScore",
    "Backchannel",
    "ClosedLoopAxis",
    "Conversation",
    "JudgedExchange",
    "PauseHandling",
    "ReferencePartner",
    "Selectivity",
    "TurnTaking",
    "UserInterruption",
]
