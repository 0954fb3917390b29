"""fdenv: full-duplex conversation environments for post-training spoken dialogue models with RL.

Importing the package registers ``FullDuplex-PauseHandling-v0``, ``FullDuplex-TurnTaking-v0``,
``FullDuplex-Backchannel-v0``, ``FullDuplex-UserInterruption-v0`` and ``FullDuplex-Mixed-v0``.
"""

from fdenv.agent import Agent
from fdenv.axes import Axis, AxisScore
from fdenv.config import EnvConfig
from fdenv.episode import Episode
from fdenv.registration import env_id, get_axis, register_axis, register_defaults
from fdenv.scenario import Scenario

register_defaults()

from fdenv.env import FullDuplexEnv  # noqa: E402
from fdenv.play import PlayedBatch, play  # noqa: E402
from fdenv.vector import FullDuplexVectorEnv  # noqa: E402
from fdenv.voice import TextVoice, Voice  # noqa: E402

__all__ = [
    "Agent",
    "Axis",
    "AxisScore",
    "EnvConfig",
    "Episode",
    "FullDuplexEnv",
    "FullDuplexVectorEnv",
    "PlayedBatch",
    "Scenario",
    "TextVoice",
    "Voice",
    "env_id",
    "get_axis",
    "play",
    "register_axis",
]
