"""Two processes on CPU (gloo): own rollouts per rank, averaged gradients, identical weights."""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def gloo_rank(rank: int, world: int, port: int) -> Iterator[None]:
    """A CPU process group for one spawned rank, with the test's throwaway axis registered."""
    os.environ["NO_TORCH_COMPILE"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        register_axis(Quiet)
        yield
    finally:
        dist.destroy_process_group()


def worker(rank: int, world: int, port: int, out_dir: str, results) -> None:
    with gloo_rank(rank, world, port):
        models = hesitant_models(5)
        before = torch.cat([p.detach().flatten() for p in models.lm.parameters()]).clone()
        trainer = GRPOTrainer(config(iterations=2, groups=1, group_size=4), models, out_dir)
        rewards = [trainer.train_iteration()["reward"] for _ in range(2)]
        after = torch.cat([p.detach().flatten() for p in models.lm.parameters()])
        results[rank] = (after, float((after - before).abs().max()), rewards)


@pytest.mark.slow
def test_two_ranks_stay_in_sync(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(2, free_port(), str(tmp_path), results), nprocs=2, join=True)
    (weights0, moved0, rewards0), (weights1, moved1, rewards1) = results[0], results[1]
    assert moved0 > 0 and moved1 > 0  # training happened
    assert torch.equal(weights0, weights1)  # averaged gradients keep the ranks identical
    assert rewards0 != rewards1  # each rank rolled out its own scenarios and samples


def sharded_worker(rank: int, world: int, port: int, out_dir: str, fsdp: bool, results) -> None:
    """One iteration with or without FSDP; with it, also a checkpoint and a resume."""
    with gloo_rank(rank, world, port):
        # a low clip makes every update clip, so clipping of sharded gradients is checked too
        settings = config(iterations=1, groups=1, group_size=4, fsdp=fsdp, grad_clip=0.5)
        trainer = GRPOTrainer(settings, hesitant_models(5), out_dir)
        first_grads = []
        step = trainer.optimizer.step

        def recording_step(*args, **kwargs):
            if not first_grads:  # later steps start from weights that differ by rounding
                first_grads.extend(
                    (p.grad.full_tensor() if fsdp else p.grad).clone()
                    for group in trainer.optimizer.param_groups
                    for p in group["params"]
                )
            return step(*args, **kwargs)

        trainer.optimizer.step = recording_step
        reward = trainer.train_iteration()["reward"]
        weights = trainer.full_lm_state()
        if fsdp:
            trainer.save()
            resumed = GRPOTrainer(settings, hesitant_models(5), out_dir)
            assert resumed.resume() and resumed.iteration == 1
            reloaded = resumed.full_lm_state()
            if rank == 0:
                assert all(torch.equal(weights[k], reloaded[k]) for k in weights)
        if rank == 0:
            results[fsdp] = ({k: v.clone() for k, v in weights.items()}, first_grads, reward)


@pytest.mark.slow
def test_fsdp_matches_averaged_gradients_and_resumes(tmp_path):
    """Sharded weights, gradients and AdamW state train the same model as replicated ones."""
    manager = mp.Manager()
    results = manager.dict()
    for fsdp in (False, True):
        args = (2, free_port(), str(tmp_path / str(fsdp)), fsdp, results)
        mp.spawn(sharded_worker, args=args, nprocs=2, join=True)
    (plain, grads_plain, reward_plain) = results[False]
    (sharded, grads_sharded, reward_sharded) = results[True]
    assert reward_plain == reward_sharded  # same rollouts: sampling did not see the sharding
    assert len(grads_plain) == len(grads_sharded) > 0
    for plain_grad, sharded_grad in zip(grads_plain, grads_sharded, strict=True):
        # averaged by reduce-scatter instead of all-reduce: equal up to summation order
        torch.testing.assert_close(sharded_grad, plain_grad, rtol=1e-4, atol=1e-7)
    start = hesitant_models(5).lm.state_dict()
    assert plain.keys() == sharded.keys() == start.keys()
    assert any(not torch.equal(sharded[k], start[k]) for k in start)  # the shards were updated
