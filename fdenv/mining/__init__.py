"""Mining axis scenarios from two-channel conversations (see :mod:`fdenv.mining.run`).

``config`` holds the settings, ``label`` pass 1 (speech, utterances, candidates), ``cut`` pass 2
(scenarios and contexts on disk), ``run`` the resumable, parallel orchestration, and
``command`` the ``fdenv-data mine`` subcommand.
"""

from fdenv.mining.config import VAD_BACKENDS, VAD_MODES, MiningConfig
from fdenv.mining.cut import build_scenario, cut_conversation
from fdenv.mining.label import conversation_ipus, label_conversation, mine_segments
from fdenv.mining.run import mine_corpus, select

__all__ = [
    "VAD_BACKENDS",
    "VAD_MODES",
    "MiningConfig",
    "build_scenario",
    "conversation_ipus",
    "cut_conversation",
    "label_conversation",
    "mine_corpus",
    "mine_segments",
    "select",
]
