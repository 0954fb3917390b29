"""Two processes on CPU (gloo): own rollouts per rank, averaged gradients, identical weights."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_grpo_trainer import Quiet, config, hesitant_models

from agents.grpo.trainer import GRPOTrainer
from fdenv import register_axis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, out_dir: str, results) -> None:
    os.environ["NO_TORCH_COMPILE"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        register_axis(Quiet)
        models = hesitant_models(5)
        before = torch.cat([p.detach().flatten() for p in models.lm.parameters()]).clone()
        trainer = GRPOTrainer(config(iterations=2, groups=1, group_size=4), models, out_dir)
        rewards = [trainer.train_iteration()["reward"] for _ in range(2)]
        after = torch.cat([p.detach().flatten() for p in models.lm.parameters()])
        results[rank] = (after, float((after - before).abs().max()), rewards)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_stay_in_sync(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(2, free_port(), str(tmp_path), results), nprocs=2, join=True)
    (weights0, moved0, rewards0), (weights1, moved1, rewards1) = results[0], results[1]
    assert moved0 > 0 and moved1 > 0  # training happened
    assert torch.equal(weights0, weights1)  # averaged gradients keep the ranks identical
    assert rewards0 != rewards1  # each rank rolled out its own scenarios and samples
