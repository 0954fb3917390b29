"""The paper's four interactivity axes; :class:`Axis` is the base for new ones."""

from fdenv.axes.backchannel import Backchannel
from fdenv.axes.base import Axis, AxisScore, JudgedExchange
from fdenv.axes.pause_handling import PauseHandling
from fdenv.axes.reference import AgentLine, ReferencePartner
from fdenv.axes.turn_taking import TurnTaking
from fdenv.axes.user_interruption import UserInterruption

PAPER_AXES: tuple[type[Axis], ...] = (PauseHandling, TurnTaking, Backchannel, UserInterruption)

__all__ = [
    "PAPER_AXES",
    "AgentLine",
    "Axis",
    "AxisScore",
    "Backchannel",
    "JudgedExchange",
    "PauseHandling",
    "ReferencePartner",
    "TurnTaking",
    "UserInterruption",
]
