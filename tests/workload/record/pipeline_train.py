"""A two-stage pipeline written by hand, as people write it for GPUs: each rank holds one
stage (a linear layer), activations go forward with ``isend``/``recv``, gradients come back
with ``batch_isend_irecv`` and ``irecv``; GPipe order (all forwards, then all backwards);
``--micro-batches`` micro-batches of ``--batch`` x ``--hidden`` fp32 activations. The
recorder's tests run it unmodified."""

import argparse
import os

import torch
import torch.distributed as dist


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--micro-batches", type=int, default=4)
    args = p.parse_args()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    stage = torch.nn.Linear(args.hidden, args.hidden).cuda()
    optimizer = torch.optim.SGD(stage.parameters(), lr=0.1)
    shape = (args.batch, args.hidden)
    for _ in range(3):
        kept = []
        for _ in range(args.micro_batches):          # forward
            if rank == 0:
                y = stage(torch.randn(shape, device="cuda"))
                dist.isend(y.detach(), dst=1).wait()
            else:
                x = torch.empty(shape, device="cuda")
                dist.recv(x, src=0)
                x.requires_grad_()
                y = stage(x)
            kept.append((x if rank else None, y))
        for x, y in kept:                             # backward
            if rank == 0:
                grad = torch.empty(shape, device="cuda")
                dist.irecv(grad, src=1).wait()
                y.backward(grad)
            else:
                y.pow(2).sum().backward()
                for work in dist.batch_isend_irecv([dist.P2POp(dist.isend, x.grad, 1 - rank)]):
                    work.wait()
        optimizer.step()
        optimizer.zero_grad()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
