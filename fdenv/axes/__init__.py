"""The paper's four interactivity axes; :class:`Axis` is the base for new ones."""

from fdenv.axes.backchannel import Backchannel
from fdenv.axes.base import Axis, AxisScore
from fdenv.axes.pause_handling import PauseHandling
from fdenv.axes.turn_taking import TurnTaking
from fdenv.axes.user_interruption import UserInterruption

PAPER_AXES: tuple[type[Axis], ...] = (PauseHandling, TurnTaking, Backchannel, UserInterruption)

__all__ = [
    "PAPER_AXES",
    "Axis",
    "AxisScore",
    "Backchannel",
    "PauseHandling",
    "TurnTaking",
    "UserInterruption",
]
