"""Megatron-style tensor parallelism written by hand, as people write it for GPUs: MLP blocks
of a column-parallel linear (identity forward, all-reduce of the input gradient backward), a
GELU and a row-parallel linear (all-reduce of the output forward), over ``--tp`` ranks;
data parallelism over the rest with DDP on its own groups. The recorder's tests run it
unmodified."""

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

TP_GROUP = None


class CopyToTP(torch.autograd.Function):
    """Megatron's f: identity forward, all-reduce of the gradient over TP backward."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=TP_GROUP)
        return grad


class ReduceFromTP(torch.autograd.Function):
    """Megatron's g: all-reduce over TP forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x, group=TP_GROUP)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class ParallelMLP(nn.Module):
    def __init__(self, hidden, tp):
        super().__init__()
        self.fc1 = nn.Linear(hidden, 4 * hidden // tp)               # column parallel
        self.fc2 = nn.Linear(4 * hidden // tp, hidden, bias=False)   # row parallel
        self.bias = nn.Parameter(torch.zeros(hidden))

    def forward(self, x):
        h = F.gelu(self.fc1(CopyToTP.apply(x)))
        return ReduceFromTP.apply(self.fc2(h)) + self.bias


def main():
    global TP_GROUP
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--tp", type=int, default=2)
    args = p.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    for first in range(0, world, args.tp):                 # TP groups: consecutive ranks
        group = dist.new_group(list(range(first, first + args.tp)))
        if rank // args.tp == first // args.tp:
            TP_GROUP = group
    dp_group = None
    for offset in range(args.tp):                          # DP groups: strided
        group = dist.new_group(list(range(offset, world, args.tp)))
        if rank % args.tp == offset:
            dp_group = group
    model = nn.Sequential(nn.Linear(args.hidden, args.hidden),
                          *(ParallelMLP(args.hidden, args.tp) for _ in range(args.layers)))
    model = DDP(model.cuda(), process_group=dp_group)
    optimizer = torch.optim.AdamW(model.parameters())
    for _ in range(3):
        x = torch.randn(args.tokens, args.hidden, device="cuda")
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
