"""One SGD step of a model under DDP (gloo, CPU) on this rank's share of a batch; used by the equivalence tests."""
import torch
import torch.distributed as dist

from mae_transfer.engine import CPUCompatibleDDP


def ddp_step(rank: int, world_size: int, init_file: str, build, batch: dict, loss_fn, out_file: str) -> None:
    """Build the model (same weights on every rank), take rank's slice of every tensor in `batch`, step once.

    `build()` returns the model; `loss_fn(model, part)` its loss on a slice of the batch. Rank 0 saves the
    updated state dict and the gradients to `out_file`.
    """
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        model = build()
        ddp = CPUCompatibleDDP(model) if world_size > 1 else model
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        per_rank = len(next(iter(batch.values()))) // world_size
        part = {key: value[rank * per_rank:(rank + 1) * per_rank] for key, value in batch.items()}
        loss = loss_fn(ddp, part)
        loss.backward()  # DDP averages the gradients over ranks during backward
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        if rank == 0:
            torch.save(dict(state=model.state_dict(), grads=grads), out_file)
    finally:
        dist.destroy_process_group()
