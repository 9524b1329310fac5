#!/usr/bin/python3
"""Training throughput of Switch-Tiny in plain PyTorch, the counterpart of bench/bench_train.c.

This file implements the model of configs/models/switch-tiny.yaml as model/t5.h describes it:
a T5 encoder-decoder (pre-norm RMSNorm blocks, no biases, relative position bias from each
stack's first block, tied embedding with the decoder output scaled by d_model^-0.5), d_model
128, d_ff 512, 4 heads of 32, 2 blocks per stack whose second is a Switch layer (8 experts,
top-1, fp32 router with input jitter eps 1e-2, capacity max(round(1.0 * tokens / E), 4) over
all the tokens of the call, earlier tokens first, dropped tokens output 0, load-balancing loss
alpha 1e-2), ReLU FFNs, dropout 0.1 (expert dropout 0.1), vocabulary 384; trained with a
factored Adafactor (T5X defaults: decay 0.8, clipping 1.0, parameter scale, no momentum) at
lr 0.01, on random token batches of B sequences of T_in input and T_out target tokens
(default 16 x 128 and 29, the shapes of bench_train). fp32, CPU, torch.set_num_threads(2).

It prints tokens/s (input tokens B * T_in per second, as bench_train) and achieved GFLOP/s with
model/count.h's executed-matmul count (3 x the forward products per sequence: attention
projections, QK^T and PV per head, cross-attention k/v over the encoder outputs, k = 1 expert
FFN per token, routers, the output layer), times B, per timed step. Timing: `--warmup` steps
untimed, then `--steps` steps; the median and best step are reported.

Exits 0 with a message when torch is not installed (Debian package python3-torch).
reference: REFERENCE.md sections 1-2; model/t5.h; model/count.h.
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_switch_tiny: PyTorch is not installed (apt-get install python3-torch); "
          "nothing measured")
    sys.exit(0)

C, FF, H, D, LAYERS, V, E = 128, 512, 4, 32, 2, 384, 8
NB, MAXD = 32, 128
DROPOUT, EXPERT_DROPOUT, JITTER, ALPHA = 0.1, 0.1, 1e-2, 1e-2
CF, MIN_CAP = 1.0, 4
PAD = 356
A = H * D


def matmul_flops_per_seq(ti, to):
    """model/count.h's matmul_flops_per_seq for this architecture (forward, one sequence)."""
    def attn(tq, tkv_proj, tkv):
        return 2 * tq * C * A + 2 * 2 * tkv_proj * C * A + 2 * tq * A * C + 2 * 2 * tq * tkv * A
    ffn = lambda t: 2 * 2 * t * C * FF
    router = lambda t: 2 * t * C * E
    switch_blocks = [b for b in range(LAYERS) if b % 2 == 1]
    enc = sum(attn(ti, ti, ti) + ffn(ti) + (router(ti) if b in switch_blocks else 0)
              for b in range(LAYERS))
    dec = sum(attn(to, to, to) + attn(to, ti, ti) + ffn(to) + (router(to) if b in switch_blocks
                                                               else 0)
              for b in range(LAYERS))
    return enc + dec + 2 * to * C * V


def trunc_normal(shape, std):
    t = torch.empty(shape)
    torch.nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)
    return torch.nn.Parameter(t * std)


def bucket(rel, bidirectional):
    """T5's relative position bucket (HF _relative_position_bucket)."""
    nb, ret = NB, torch.zeros_like(rel)
    if bidirectional:
        nb //= 2
        ret += (rel > 0).long() * nb
        n = rel.abs()
    else:
        n = -torch.clamp(rel, max=0)
    max_exact = nb // 2
    large = max_exact + (torch.log(n.float().clamp(min=1) / max_exact) /
                         math.log(MAXD / max_exact) * (nb - max_exact)).long()
    large = torch.clamp(large, max=nb - 1)
    return ret + torch.where(n < max_exact, n, large)


class RMSNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class Attention(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.q = trunc_normal((C, A), math.sqrt(s / (C * D)))
        self.k = trunc_normal((C, A), math.sqrt(s / C))
        self.v = trunc_normal((C, A), math.sqrt(s / C))
        self.o = trunc_normal((A, C), math.sqrt(s / A))

    def forward(self, x, kv, bias, mask):
        B, T, _ = x.shape
        S = kv.shape[1]
        q = (x @ self.q).view(B, T, H, D).transpose(1, 2)
        k = (kv @ self.k).view(B, S, H, D).transpose(1, 2)
        v = (kv @ self.v).view(B, S, H, D).transpose(1, 2)
        scores = q @ k.transpose(-1, -2)
        if bias is not None:
            scores = scores + bias
        scores = scores.masked_fill(~mask, float("-inf"))
        p = F.dropout(torch.softmax(scores, -1), DROPOUT, self.training)
        return (p @ v).transpose(1, 2).reshape(B, T, A) @ self.o


class Dense(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.wi = trunc_normal((C, FF), math.sqrt(s / C))
        self.wo = trunc_normal((FF, C), math.sqrt(s / FF))

    def forward(self, x):
        return F.dropout(torch.relu(x @ self.wi), DROPOUT, self.training) @ self.wo


class Switch(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.wr = trunc_normal((C, E), math.sqrt(s / C))
        self.wi = trunc_normal((E, C, FF), math.sqrt(s / C))
        self.wo = trunc_normal((E, FF, C), math.sqrt(s / FF))
        self.aux = torch.zeros(())

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, C)
        N = x.shape[0]
        xr = x * torch.empty_like(x).uniform_(1 - JITTER, 1 + JITTER) if self.training else x
        p = torch.softmax(xr.float() @ self.wr, -1)
        gate, expert = p.max(-1)
        onehot = F.one_hot(expert, E)
        cap = max(int(round(CF * N / E)), MIN_CAP)
        pos = (torch.cumsum(onehot, 0) - 1) * onehot
        keep = (pos.sum(-1) < cap)
        f = onehot.float().mean(0)
        self.aux = ALPHA * E * (f * p.mean(0)).sum()
        out = torch.zeros_like(x)
        for e in range(E):
            idx = torch.nonzero((expert == e) & keep).squeeze(1)
            if idx.numel() == 0:
                continue
            h = F.dropout(torch.relu(x[idx] @ self.wi[e]), EXPERT_DROPOUT, self.training)
            out = out.index_add(0, idx, (h @ self.wo[e]) * gate[idx, None])
        return out.view(shape)


class Block(torch.nn.Module):
    def __init__(self, dec, switch, s):
        super().__init__()
        self.self_attn, self.n1 = Attention(s), RMSNorm()
        self.cross = Attention(s) if dec else None
        self.n2 = RMSNorm() if dec else None
        self.ffn = Switch(s) if switch else Dense(s)
        self.n3 = RMSNorm()

    def forward(self, x, bias, mask, enc=None, enc_mask=None):
        drop = lambda y: F.dropout(y, DROPOUT, self.training)
        h = self.n1(x)
        x = x + drop(self.self_attn(h, h, bias, mask))
        if self.cross is not None:
            x = x + drop(self.cross(self.n2(x), enc, None, enc_mask))
        return x + drop(self.ffn(self.n3(x)))


class SwitchTiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        s = 0.1
        self.shared = trunc_normal((V, C), 1.0)
        self.bias = torch.nn.ParameterList([trunc_normal((NB, H), math.sqrt(s / NB))
                                            for _ in range(2)])
        self.enc = torch.nn.ModuleList([Block(0, b % 2 == 1, s) for b in range(LAYERS)])
        self.dec = torch.nn.ModuleList([Block(1, b % 2 == 1, s) for b in range(LAYERS)])
        self.enc_norm, self.dec_norm = RMSNorm(), RMSNorm()

    def position_bias(self, table, T, bidirectional):
        pos = torch.arange(T)
        b = bucket(pos[None, :] - pos[:, None], bidirectional)
        return table[b].permute(2, 0, 1)[None]

    def forward(self, inputs, dec_inputs, targets):
        drop = lambda y: F.dropout(y, DROPOUT, self.training)
        Ti, To = inputs.shape[1], dec_inputs.shape[1]
        in_keys = (inputs != PAD)[:, None, None, :]
        x = drop(self.shared[inputs])
        bias = self.position_bias(self.bias[0], Ti, True)
        for blk in self.enc:
            x = blk(x, bias, in_keys)
        enc = drop(self.enc_norm(x))
        causal = torch.tril(torch.ones(To, To, dtype=torch.bool))[None, None]
        dec_mask = causal & (targets != PAD)[:, None, None, :]
        y = drop(self.shared[dec_inputs])
        bias = self.position_bias(self.bias[1], To, False)
        for blk in self.dec:
            y = blk(y, bias, dec_mask, enc, in_keys)
        logits = (drop(self.dec_norm(y)) * C ** -0.5) @ self.shared.t()
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=PAD)
        aux = sum(m.aux for m in self.modules() if isinstance(m, Switch))
        return loss + aux


class Adafactor:
    """T5X Adafactor: factored second moments for matrices (stacks per matrix), decay 0.8,
    update clipping 1.0, steps relative to the parameter RMS (eps2 1e-3), no momentum."""

    def __init__(self, params, lr):
        self.params, self.lr, self.step = list(params), lr, 0
        self.state = [self.init_state(p) for p in self.params]

    @staticmethod
    def init_state(p):
        if p.dim() >= 2 and min(p.shape[-2:]) >= 2:
            return (torch.zeros(p.shape[:-1]), torch.zeros(p.shape[:-2] + p.shape[-1:]))
        return (torch.zeros_like(p),)

    @torch.no_grad()
    def update(self):
        self.step += 1
        beta2 = 1.0 - self.step ** -0.8
        for p, st in zip(self.params, self.state):
            g2 = p.grad * p.grad + 1e-30
            if len(st) == 2:
                r, c = st
                r.mul_(beta2).add_(g2.mean(-1), alpha=1 - beta2)
                c.mul_(beta2).add_(g2.mean(-2), alpha=1 - beta2)
                v = (r / r.mean(-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2)
            else:
                st[0].mul_(beta2).add_(g2, alpha=1 - beta2)
                v = st[0]
            u = p.grad * torch.rsqrt(v)
            u /= torch.clamp(u.pow(2).mean().sqrt() / 1.0, min=1.0)
            scale = torch.clamp(p.pow(2).mean().sqrt(), min=1e-3)
            p.sub_(self.lr * scale * u)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input-length", type=int, default=128)
    ap.add_argument("--target-length", type=int, default=29)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(args.threads)
    model = SwitchTiny().train()
    opt = Adafactor(model.parameters(), 0.01)
    B, Ti, To = args.batch, args.input_length, args.target_length
    g = torch.Generator().manual_seed(2)
    times, loss = [], float("nan")
    for step in range(args.warmup + args.steps):
        inputs = torch.randint(0, 256, (B, Ti), generator=g)
        targets = torch.randint(0, 256, (B, To), generator=g)
        dec_inputs = torch.cat([torch.full((B, 1), PAD), targets[:, :-1]], 1)
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        total = model(inputs, dec_inputs, targets)
        total.backward()
        opt.update()
        dt = time.perf_counter() - t0
        loss = total.item()
        if step >= args.warmup:
            times.append(dt)
    times.sort()
    median, best = times[len(times) // 2], times[0]
    flops = 3 * matmul_flops_per_seq(Ti, To) * B
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU; "
          f"{nparams} parameters; B {B}, T_in {Ti}, T_out {To}; last total loss {loss:.4f}")
    print(f"train GFLOP per step (model/count.h rule): {flops * 1e-9:.4f}")
    for name, t in (("median", median), ("best", best)):
        print(f"{name:6s} step {1e3 * t:8.1f} ms  {B * Ti / t:9.1f} tokens/s  "
              f"{flops * 1e-9 / t:7.2f} GFLOP/s")


if __name__ == "__main__":
    main()
