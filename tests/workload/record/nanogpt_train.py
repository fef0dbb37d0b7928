"""A nanoGPT-style training script, written as people write them for GPUs: DDP launched by
torchrun, ``.cuda()``, autocast to bf16, AdamW, gradient accumulation, loss logging, and
``torch.compile`` with ``--compile`` and AdamW's fused kernel with ``--fused-adamw`` (as
nanoGPT's ``train.py`` does on GPUs). The
recorder's tests run it unmodified (``python nanogpt_train.py --layers 2 ...``)."""

import argparse
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP


class Block(nn.Module):
    def __init__(self, hidden, heads, seq_len, attention):
        super().__init__()
        self.heads = heads
        self.attention = attention
        if attention == "manual":  # nanoGPT before PyTorch 2.0's fused attention
            self.register_buffer("bias", torch.tril(torch.ones(seq_len, seq_len))
                                 .view(1, 1, seq_len, seq_len))
        self.ln_1 = nn.LayerNorm(hidden)
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.c_proj = nn.Linear(hidden, hidden)
        self.ln_2 = nn.LayerNorm(hidden)
        self.c_fc = nn.Linear(hidden, 4 * hidden)
        self.mlp_proj = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.attention == "manual":
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, seq_len, layers, hidden, heads, attention):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(seq_len, hidden)
        self.h = nn.ModuleList(Block(hidden, heads, seq_len, attention) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying

    def forward(self, idx, targets):
        t = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=12)
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    p.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping (0: none)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fused-adamw", action="store_true", help="AdamW's fused kernel")
    args = p.parse_args()

    dist.init_process_group(backend="nccl")
    local_rank = int(os.environ["LOCAL_RANK"])
    device = f"cuda:{local_rank}"
    torch.cuda.set_device(device)
    model = GPT(args.vocab, args.seq_len, args.layers, args.hidden, args.heads,
                args.attention).cuda()
    if args.compile:
        model = torch.compile(model)
    model = DDP(model, device_ids=[local_rank])
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1,
                                  fused=args.fused_adamw or None)
    for it in range(args.iters):
        t0 = time.time()
        for micro in range(args.accum):
            x = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len)).to(device)
            y = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len)).to(device)
            model.require_backward_grad_sync = micro == args.accum - 1
            with torch.autocast(device_type="cuda", dtype=getattr(torch, args.dtype)):
                loss = model(x, y) / args.accum
            loss.backward()
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if dist.get_rank() == 0 and it % 10 == 0:
            print(f"iter {it}: loss {loss.item() * args.accum:.4f}, {time.time() - t0:.3f} s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
