"""From a two-channel corpus to GRPO: mine a manifest, then train on it with its contexts."""

import pytest
from mining_corpus import write_seamless
from test_grpo_trainer import config, hesitant_models

from agents.grpo.trainer import GRPOTrainer
from fdenv.corpora import SeamlessReader
from fdenv.mining import MiningConfig, mine_corpus


@pytest.mark.slow
def test_trainer_runs_on_a_mined_manifest_with_contexts(tmp_path):
    write_seamless(tmp_path / "corpus")
    mine_corpus(SeamlessReader(tmp_path / "corpus"), tmp_path / "mined", MiningConfig(), False)
    settings = config(
        axes=("UserInterruption",),
        scenarios=str(tmp_path / "mined" / "manifest.jsonl"),
        iterations=2,
        groups=1,
        group_size=2,
        context_prob=1.0,
    )
    trainer = GRPOTrainer(settings, hesitant_models(5), tmp_path / "run")
    first, second = trainer.train_iteration(), trainer.train_iteration()
    # the mined interruption segment starts 21.5 s into its conversation: l_max is 0, then 30
    assert first["context_s"] == 0.0 and 0.0 < second["context_s"] <= 21.5
    assert second["reward_by_axis"].keys() == {"UserInterruption"}
