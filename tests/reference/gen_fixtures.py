#!/usr/bin/python3
"""Generates the reference fixtures of tests/reference/fixtures/ from plain PyTorch code.

Run by hand with Debian's python3-torch (1.13):  /usr/bin/python3 tests/reference/gen_fixtures.py
[OUTDIR]  (default: the fixtures/ folder next to this script). The build and the tests never
run it; they read the committed .bin files. Output is deterministic: every fixture seeds its
own torch.Generator and the script runs single-threaded, so two runs write identical bytes.

Fixture format (version 1, all little-endian; model/fixture.h is the full description):
"SWFX", u32 version, u32 kind length + kind ("switch_layer", "attention", "optimizer",
"t5_model"), u32 params length + "key=value\n" lines (shapes, flags), u32 tensor count, then
per tensor: u32 name length + name, u8 role (0 input, 1 expected output), u8 dtype (0 f32,
1 i32), u8 rank, u8 0, u32 dims[rank], f32 tolerance (f32 outputs: normwise relative error
bound max|c - r| / max|r|; else 0), row-major data; last a u32 CRC-32 (zlib) of all bytes
before it.

The references below are written from the semantics in REFERENCE.md sections 1-2 and the
header comments of model/switch_layer.h, model/layers.h, model/optim.h and model/t5.h, not
from the C code (T5X's Adafactor by hand from optim.h's formulas; AdamW is torch.optim.AdamW).
To make routing decisions comparable EXACTLY, the reference reproduces the C model's rounding
points: every matrix product sums its fp32 (or bf16-rounded) products in k order from +0 (the
order the matrix-unit model documents in sim/mxu_gemm.c), exp/log are computed in double and
rounded to fp32 (glibc's expf/logf are correctly rounded in practice), softmax sums run in
index order, and bf16 rounding is torch's .to(torch.bfloat16) (round-to-nearest-even,
denormals kept: the fixtures ask the C side for denormals=keep). Roundings pass gradients
straight through, and in bf16 numerics the backward products round their operands to bf16
too, as the C model does. Gradients come from torch.autograd (other summation orders than C:
that is what the per-tensor tolerances cover).
"""
import math
import os
import struct
import sys
import zlib

import torch

F32 = torch.float32
F64 = torch.float64
MAGIC = b"SWFX"
VERSION = 1
INPUT, OUTPUT = 0, 1
TILE_K = 128  # rows of the matrix unit's weight tile (sim_gemm_cfg_default)

# Normwise relative tolerances per numerics (forward values / gradients).
TOL_FP32 = 1e-5
TOL_FP32_GRAD = 2e-5
TOL_BF16 = 1e-2
TOL_BF16_GRAD = 2e-2


# ---- fixture writer ------------------------------------------------------------------------

class Fixture:
    def __init__(self, kind, params):
        self.kind = kind
        self.params = params  # list of (key, value) in order
        self.tensors = []     # (name, role, dtype, tensor, tol)

    def input(self, name, t):
        self._add(name, INPUT, t, 0.0)

    def output(self, name, t, tol=0.0):
        self._add(name, OUTPUT, t, tol)

    def _add(self, name, role, t, tol):
        t = t.detach()
        if t.dtype in (torch.int32, torch.int64):
            dtype, t, tol = 1, t.to(torch.int32), 0.0
        else:
            dtype, t = 0, t.to(F32)
            assert torch.isfinite(t).all(), name
            assert role == INPUT or 0.0 < tol < 1.0, (name, tol)
        self.tensors.append((name, role, dtype, t.contiguous(), tol))

    def to_bytes(self):
        out = bytearray(MAGIC + struct.pack("<I", VERSION))
        kind = self.kind.encode()
        out += struct.pack("<I", len(kind)) + kind
        text = "".join("%s=%s\n" % (k, fmt_value(v)) for k, v in self.params).encode()
        out += struct.pack("<I", len(text)) + text
        out += struct.pack("<I", len(self.tensors))
        for name, role, dtype, t, tol in self.tensors:
            nb = name.encode()
            out += struct.pack("<I", len(nb)) + nb
            out += struct.pack("<BBBB", role, dtype, t.dim(), 0)
            out += struct.pack("<%dI" % t.dim(), *t.shape)
            out += struct.pack("<f", tol)
            code = "<%di" % t.numel() if dtype == 1 else "<%df" % t.numel()
            out += struct.pack(code, *t.reshape(-1).tolist())
        out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
        return bytes(out)


def fmt_value(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ---- numerics mirrors ----------------------------------------------------------------------

def rb(x):
    """Rounds to bf16 (nearest even, denormals kept) and widens back to fp32."""
    return x.to(torch.bfloat16).to(F32)


class RoundST(torch.autograd.Function):
    """bf16 rounding whose gradient passes straight through."""

    @staticmethod
    def forward(ctx, x):
        return rb(x)

    @staticmethod
    def backward(ctx, g):
        return g


def sysmm(a, b):
    """a[M,K] @ b[K,N] in fp32, summed as the matrix unit does: per K tile of TILE_K rows,
    s = +0, s = s + a[:, k] * b[k, :] in k order (product rounded, then the add), and the
    tile sums added into an accumulator that starts at +0."""
    M, K = a.shape
    N = b.shape[1]
    acc = torch.zeros(M, N, dtype=F32)
    for k0 in range(0, K, TILE_K):
        s = torch.zeros(M, N, dtype=F32)
        for k in range(k0, min(K, k0 + TILE_K)):
            s = s + a[:, k:k + 1] * b[k:k + 1, :]
        acc = acc + s
    return acc


class MatMul(torch.autograd.Function):
    """a @ b through the matrix unit; with bf16 operands every operand (forward and backward)
    is rounded to bf16 first."""

    @staticmethod
    def forward(ctx, a, b, bf16):
        ctx.save_for_backward(a, b)
        ctx.bf16 = bf16
        op = rb if bf16 else (lambda x: x)
        return sysmm(op(a), op(b))

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        op = rb if ctx.bf16 else (lambda x: x)
        return sysmm(op(g), op(b).t().contiguous()), sysmm(op(a).t().contiguous(), op(g)), None


class Numerics:
    def __init__(self, name):
        self.name = name
        self.bf16 = name == "bf16"

    def mm(self, a, b, bf16_operands=None):
        ops = self.bf16 if bf16_operands is None else bf16_operands
        return MatMul.apply(a, b, ops)

    def store(self, x):
        return RoundST.apply(x) if self.bf16 else x

    def tol(self, grad=False):
        if self.bf16:
            return TOL_BF16_GRAD if grad else TOL_BF16
        return TOL_FP32_GRAD if grad else TOL_FP32


def exp32(x):
    """expf: exp in double, rounded once to fp32 (differentiable)."""
    return torch.exp(x.to(F64)).to(F32)


def log32(x):
    return torch.log(x.to(F64)).to(F32)


def seq_sum(x):
    """Sum over the last dimension in index order, fp32, from +0."""
    s = torch.zeros(x.shape[:-1], dtype=F32)
    for j in range(x.shape[-1]):
        s = s + x[..., j]
    return s


class SoftmaxC(torch.autograd.Function):
    """Softmax over the last dimension in fp32 as the C vector unit computes it: max
    subtracted, exp, sums in index order, divide; hidden (bool) entries are -inf and get 0.
    Returns (p, logsumexp); with round_p, p is rounded to bf16. The backward is the C model's
    convention for a rounded p (straight through): dh = p (dp - sum(p dp)) + dlse p with the
    returned (rounded) p."""

    @staticmethod
    def forward(ctx, h, hidden, round_p):
        if hidden is not None:
            h = h.masked_fill(hidden, float("-inf"))
        m = h.max(dim=-1, keepdim=True).values
        assert torch.isfinite(m).all(), "a softmax row with every entry hidden"
        e = exp32(h - m)
        s = seq_sum(e).unsqueeze(-1)
        p = e / s
        lse = (m + log32(s)).squeeze(-1)
        if round_p:
            p = rb(p)
        ctx.save_for_backward(p)
        return p, lse

    @staticmethod
    def backward(ctx, dp, dlse):
        p, = ctx.saved_tensors
        s = seq_sum(p * dp).unsqueeze(-1)
        return p * (dp - s) + dlse.unsqueeze(-1) * p, None, None


def softmax_rows(h, hidden=None, round_p=False):
    return SoftmaxC.apply(h, hidden, round_p)


def gelu_new(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in fp32, C's evaluation order."""
    k0 = torch.tensor(0.7978845608028654, dtype=F32)
    k1 = torch.tensor(0.044715, dtype=F32)
    inner = x + k1 * x * x * x
    t = torch.tanh(k0 * inner)
    return 0.5 * x * (1.0 + t)


def normal(gen, *shape, std=1.0):
    return (torch.randn(*shape, generator=gen, dtype=F32) * std).to(F32)


# ---- Switch layer reference ------------------------------------------------------------------

def capacity(cf, S, E, min_capacity, rounding):
    v = (cf * S) / E
    k = int(round(v)) if rounding == "round" else min(S, int(math.floor(v)))
    return max(k, min_capacity)


def choose(p_row, k):
    """The k best experts, best first; ties go to the lowest index."""
    chosen = []
    for _ in range(k):
        best = None
        for e, v in enumerate(p_row):
            if e in chosen:
                continue
            if best is None or v > p_row[best]:
                best = e
        chosen.append(best)
    return chosen


def dispatch(experts, probs, S, E, K, k, priority):
    """slot[t][j]: position of choice j of token t in its expert's buffer of the token's
    group, or -1 when that expert is full. Choice 0 of every token first (in priority order),
    then choice 1, ..."""
    N = len(experts)
    slot = [[-1] * k for _ in range(N)]
    for g in range(N // S):
        tokens = list(range(g * S, (g + 1) * S))
        if priority == "batch_prioritized":
            tokens.sort(key=lambda t: -probs[t][experts[t][0]])  # stable: ties by index
        filled = [0] * E
        for j in range(k):
            for t in tokens:
                e = experts[t][j]
                if filled[e] < K:
                    slot[t][j] = filled[e]
                filled[e] += 1
    return slot


def switch_forward(x, wr, wi, wo, cfg, nx):
    """The Switch layer (REFERENCE.md section 1 semantics): returns out [N, C] and a dict of
    the losses (double), probabilities, gates and routing decisions."""
    N, C = x.shape
    E, F, k, S = cfg["E"], cfg["F"], cfg["top_k"], cfg["group_size"] or x.shape[0]
    G = N // S
    router_bf16 = cfg["router_dtype"] == "bf16"
    h = nx.mm(x, wr, bf16_operands=router_bf16)
    # the choices without the bf16 roundings of logits and probabilities (case checks only)
    raw_choice = [choose(row, 1)[0] for row in softmax_rows(h.detach())[0].tolist()]
    if router_bf16:
        h = RoundST.apply(h)
    p, lse = softmax_rows(h, round_p=router_bf16)
    pl = p.detach().tolist()
    experts = [choose(row, k) for row in pl]
    K = capacity(cfg["capacity_factor"], S, E, cfg["min_capacity"], cfg["capacity_rounding"])
    slot = dispatch(experts, pl, S, E, K, k, cfg["drop_priority"])
    # gates
    gates = []
    for t in range(N):
        pe = [p[t, experts[t][j]] for j in range(k)]
        if cfg["renormalize"]:
            d = torch.zeros((), dtype=F32)
            for v in pe:
                d = d + v
            d = d + torch.tensor(1e-9, dtype=F32)
            pe = [v / d for v in pe]
        gates.append([nx.store(v.reshape(1)).reshape(()) if slot[t][j] >= 0
                      else torch.zeros((), dtype=F32) for j, v in enumerate(pe)])
    # experts: kept choices packed by (expert, group, slot)
    ye = {}
    for e in range(E):
        rows = sorted(((t // S, slot[t][j]), t, j) for t in range(N) for j in range(k)
                      if experts[t][j] == e and slot[t][j] >= 0)
        if not rows:
            continue
        xe = nx.store(x[[t for _, t, _ in rows]])
        pre = nx.store(nx.mm(xe, wi[e]))
        if cfg["ffn"] == "geglu":
            act = gelu_new(pre[:, :F]) * pre[:, F:]
        else:
            act = torch.relu(pre)
        y = nx.store(nx.mm(nx.store(act), wo[e]))
        for i, (_, t, j) in enumerate(rows):
            ye[(t, j)] = y[i]
    outs = []
    for t in range(N):
        o = torch.zeros(C, dtype=F32)
        for j in range(k):
            if slot[t][j] >= 0:
                o = o + gates[t][j] * ye[(t, j)]
        outs.append(o)
    out = nx.store(torch.stack(outs))
    # losses (double)
    counted = k if cfg["aux_count_all"] else 1
    aux = torch.zeros((), dtype=F64)
    for g in range(G):
        f = [0] * E
        for t in range(g * S, (g + 1) * S):
            for j in range(counted):
                f[experts[t][j]] += 1
        P = p[g * S:(g + 1) * S].to(F64).sum(dim=0) / S
        aux = aux + sum((f[e] / S) * P[e] for e in range(E))
    aux = cfg["aux_alpha"] * E * (aux / G)
    z = cfg["z_coef"] * (lse.to(F64) ** 2).sum() / N
    gate_t = torch.stack([torch.stack(row) for row in gates])
    return out, {"out": out, "probs": p, "gate": gate_t, "aux": aux, "z": z, "K": K,
            "expert": torch.tensor(experts, dtype=torch.int32),
            "flips": sum(raw_choice[t] != experts[t][0] for t in range(N)),
            "slot": torch.tensor(slot, dtype=torch.int32)}


def switch_reference(x, wr, wi, wo, dout, cfg, nx):
    """Forward and backward (loss = sum(out * dout) + L_aux + L_z) of the Switch layer; the
    gradients land in .grad of the leaves."""
    out, ref = switch_forward(x, wr, wi, wo, cfg, nx)
    ((out.to(F64) * dout.to(F64)).sum() + ref["aux"] + ref["z"]).backward()
    return ref


SWITCH_DEFAULTS = dict(top_k=1, ffn="relu", capacity_factor=1.0, min_capacity=1, group_size=0,
                       capacity_rounding="round", drop_priority="token_order",
                       router_dtype="fp32", renormalize=False, aux_count_all=False,
                       aux_alpha=0.05, z_coef=0.01, numerics="fp32")


def switch_fixture(seed, shape, tweak=None, **over):
    """One switch_layer fixture: random inputs (tweak(wr) may edit the router), the reference,
    and the expected outputs with their tolerances."""
    cfg = dict(SWITCH_DEFAULTS, **over)
    N, C, F, E = shape
    cfg.update(N=N, C=C, F=F, E=E)
    FI = 2 * F if cfg["ffn"] == "geglu" else F
    gen = torch.Generator().manual_seed(seed)
    x = normal(gen, N, C)
    wr = normal(gen, C, E, std=C ** -0.5)
    if tweak:
        wr = tweak(wr)
    wi = normal(gen, E, C, FI, std=C ** -0.5)
    wo = normal(gen, E, F, C, std=F ** -0.5)
    dout = normal(gen, N, C)
    leaves = [t.clone().requires_grad_(True) for t in (x, wr, wi, wo)]
    nx = Numerics(cfg["numerics"])
    ref = switch_reference(*leaves, dout, cfg, nx)
    keys = ["N", "C", "F", "E", "top_k", "ffn", "capacity_factor", "min_capacity",
            "group_size", "capacity_rounding", "drop_priority", "router_dtype", "renormalize",
            "aux_count_all", "aux_alpha", "z_coef", "numerics"]
    params = [(key, cfg[key]) for key in keys] + [("denormals", "keep")]
    fx = Fixture("switch_layer", params)
    for name, t in zip(("x", "wr", "wi", "wo"), (x, wr, wi, wo)):
        fx.input(name, t)
    fx.input("dout", dout)
    fx.output("expert", ref["expert"])
    fx.output("slot", ref["slot"])
    fx.output("capacity", torch.tensor(ref["K"], dtype=torch.int32))
    fx.output("probs", ref["probs"], nx.tol())
    fx.output("gate", ref["gate"], nx.tol())
    fx.output("out", ref["out"], nx.tol())
    fx.output("aux_loss", ref["aux"].to(F32), nx.tol())
    fx.output("z_loss", ref["z"].to(F32), nx.tol())
    for name, leaf in zip(("dx", "dwr", "dwi", "dwo"), leaves):
        fx.output(name, leaf.grad, nx.tol(grad=True))
    return fx, ref


def equal_columns(a, b):
    """Router tweak: expert b gets expert a's router column, so their logits tie exactly."""
    def tweak(wr):
        wr = wr.clone()
        wr[:, b] = wr[:, a]
        return wr
    return tweak


def near_columns(a, b, rel):
    """Router tweak: expert b's column is expert a's times (1 + rel): fp32 logits differ in
    the last bits, which bf16 rounding turns into exact ties."""
    def tweak(wr):
        wr = wr.clone()
        wr[:, b] = (wr[:, a] * (1.0 + rel)).to(F32)
        return wr
    return tweak


def favour(e, amount):
    """Router tweak: shifts every token towards expert e (capacity overflow)."""
    def tweak(wr):
        wr = wr.clone()
        wr[:, e] = wr[:, e] + amount
        return wr
    return tweak


def shrink(factor):
    """Router tweak: smaller logits, so more probabilities fall within one bf16 step."""
    def tweak(wr):
        return (wr * factor).to(F32)
    return tweak


def both(*tweaks):
    def tweak(wr):
        for t in tweaks:
            wr = t(wr)
        return wr
    return tweak


def check_switch_case(name, ref, want_ties=False, want_drops=True, want_flips=False):
    """Asserts that a case exercises what its name promises (flips: tokens whose choice 0
    the bf16 rounding of the router changed)."""
    probs = ref["probs"].detach()
    top = probs.max(dim=-1).values
    ties = int(((probs == top.unsqueeze(-1)).sum(dim=-1) > 1).sum())
    drops = int((ref["slot"] < 0).sum())
    if want_ties:
        assert ties > 0, "%s: no tied router probabilities" % name
    if want_drops:
        assert drops > 0, "%s: no dropped token" % name
    if want_flips:
        assert ref["flips"] > 0, "%s: bf16 rounding changed no routing decision" % name
    return "ties=%d bf16_flips=%d dropped=%d capacity=%d" % (ties, ref["flips"], drops, ref["K"])


def switch_fixtures():
    cases = []
    # top-1, fp32; G = 2 groups of 10 over 4 experts at cf 1.0: 2.5 rounds (half even) to 2;
    # experts 2 and 3 tie exactly (3 never wins); expert 0 favoured: overflow.
    fx, ref = switch_fixture(101, (20, 8, 12, 4), tweak=both(equal_columns(2, 3), favour(0, 0.3)),
                             group_size=10)
    cases.append(("switch_top1_fp32", fx, check_switch_case("top1_fp32", ref, want_ties=True)))
    # top-2 GEGLU, batch-prioritized routing, f counting every choice; K = 6 for 32 choices
    fx, ref = switch_fixture(102, (16, 8, 6, 4), tweak=favour(1, 0.4), top_k=2, ffn="geglu",
                             capacity_factor=1.5, drop_priority="batch_prioritized",
                             aux_count_all=True)
    cases.append(("switch_top2_geglu_bpr_fp32", fx, check_switch_case("top2_bpr", ref)))
    # top-2 with renormalised gates, truncating capacity (1.3 * 12 / 3 = 5.2 -> 5), min 2
    fx, ref = switch_fixture(103, (12, 6, 8, 3), tweak=favour(2, 0.5), top_k=2,
                             renormalize=True, capacity_factor=1.3, min_capacity=2,
                             capacity_rounding="truncate")
    cases.append(("switch_top2_renorm_fp32", fx, check_switch_case("top2_renorm", ref)))
    # bf16 router (fp32 elsewhere): experts 0 and 1 differ by 2^-11 relative, so bf16
    # rounding of the probabilities creates ties that the lowest index wins; capacity
    # 1.4 * 16 / 4 = 5.6 rounds up to 6 (truncation would give 5)
    fx, ref = switch_fixture(104, (16, 8, 8, 4), tweak=near_columns(0, 1, 2.0 ** -11),
                             router_dtype="bf16", capacity_factor=1.4)
    cases.append(("switch_top1_bf16router", fx,
                  check_switch_case("bf16router", ref, want_ties=True, want_flips=True)))
    # full bf16 numerics (operands, stored activations, gates) with the bf16 router, batch-
    # prioritized, two groups; small logits and experts 2, 3 within 2^-6 (more than the bf16
    # operand rounding) make rounding ties
    fx, ref = switch_fixture(105, (16, 8, 8, 4), tweak=both(shrink(0.2),
                                                           near_columns(2, 3, 2.0 ** -6)),
                             router_dtype="bf16", numerics="bf16", group_size=8,
                             drop_priority="batch_prioritized")
    cases.append(("switch_top1_bf16", fx,
                  check_switch_case("bf16", ref, want_ties=True, want_flips=True)))
    # top-2 GEGLU in bf16 numerics with an fp32 router; capacity 1.5 * 12 / 4 = 4.5 rounds
    # half to even: 4
    fx, ref = switch_fixture(106, (12, 8, 6, 4), tweak=favour(3, 0.4), top_k=2, ffn="geglu",
                             numerics="bf16", capacity_factor=1.5)
    cases.append(("switch_top2_geglu_bf16", fx, check_switch_case("top2_bf16", ref)))
    return cases


# ---- attention reference ---------------------------------------------------------------------

def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's bucket (HuggingFace _relative_position_bucket), rel = key - query, fp32 log."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).to(torch.long) * num_buckets
        n = torch.abs(rel)
    else:
        n = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = n < max_exact
    ratio = torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) \
        * (num_buckets - max_exact)
    # no value may sit within rounding of an integer (the C side computes the same in fp32)
    frac = (ratio - ratio.round()).abs()
    assert bool((is_small | (frac > 1e-4) | (ratio == ratio.round())).all())
    large = max_exact + ratio.to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, n, large)


def position_bias(table, T, S, bidirectional, num_buckets, max_distance):
    """bias[h, i, j] = table[bucket(j - i), h]."""
    rel = torch.arange(S)[None, :] - torch.arange(T)[:, None]
    bk = relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    return table[bk].permute(2, 0, 1)


def hidden_keys(B, T, S, causal, key_mask):
    """[B, T, S] True where query i may not see key j (future keys, padding)."""
    hidden = torch.zeros(B, T, S, dtype=torch.bool)
    if causal:
        hidden |= torch.ones(T, S, dtype=torch.bool).triu(1)[None]
    if key_mask is not None:
        hidden |= (key_mask == 0)[:, None, :]
    return hidden


def attention_forward(xq, xkv, wq, wk, wv, wo, bias, hidden, H, D, nx):
    """T5 multi-head attention (model/layers.h semantics): out [B, T, C], att [B, H, T, S]."""
    B, T, C = xq.shape
    S = xkv.shape[1]
    HD = H * D
    q = nx.store(nx.mm(xq.reshape(B * T, C), wq)).reshape(B, T, HD)
    k = nx.store(nx.mm(xkv.reshape(B * S, C), wk)).reshape(B, S, HD)
    v = nx.store(nx.mm(xkv.reshape(B * S, C), wv)).reshape(B, S, HD)
    atts, ys = [], []
    for b in range(B):
        for h in range(H):
            qs = q[b, :, h * D:(h + 1) * D]
            ks = k[b, :, h * D:(h + 1) * D]
            sc = nx.mm(qs, ks.t())  # no 1/sqrt(D): T5 folds it into wq
            if bias is not None:
                sc = sc + bias[h]
            p, _ = softmax_rows(sc, hidden[b], round_p=nx.bf16)
            atts.append(p)
    att = torch.stack(atts).reshape(B, H, T, S)  # stored (rounded) by softmax_rows
    for b in range(B):
        heads = [nx.mm(att[b, h], v[b, :, h * D:(h + 1) * D]) for h in range(H)]
        ys.append(torch.cat(heads, dim=1))
    y = nx.store(torch.stack(ys))
    out = nx.store(nx.mm(y.reshape(B * T, HD), wo)).reshape(B, T, C)
    return out, att


def attention_reference(xq, xkv, wq, wk, wv, wo, table, key_mask, dout, cfg, nx):
    """Forward and backward (loss = sum(out * dout)) of one attention call."""
    B, T, S = xq.shape[0], xq.shape[1], xkv.shape[1]
    bias = None
    if table is not None:
        bias = position_bias(table, T, S, cfg["bidirectional"], cfg["num_buckets"],
                             cfg["max_distance"])
    hidden = hidden_keys(B, T, S, cfg["causal"], key_mask)
    out, att = attention_forward(xq, xkv, wq, wk, wv, wo, bias, hidden, cfg["H"], cfg["D"], nx)
    (out.to(F64) * dout.to(F64)).sum().backward()
    return out, att


def attention_fixture(seed, B, T, S, C, H, D, causal, self_attn, bias, numerics="fp32",
                      bidirectional=False, num_buckets=8, max_distance=16, pad=None):
    """pad: {batch: padded key count at the end} for the key mask."""
    gen = torch.Generator().manual_seed(seed)
    HD = H * D
    xq = normal(gen, B, T, C)
    xkv = xq if self_attn else normal(gen, B, S, C)
    w = [normal(gen, C, HD, std=(C * D) ** -0.5), normal(gen, C, HD, std=C ** -0.5),
         normal(gen, C, HD, std=C ** -0.5), normal(gen, HD, C, std=HD ** -0.5)]
    table = normal(gen, num_buckets, H, std=0.5) if bias else None
    dout = normal(gen, B, T, C)
    key_mask = None
    if pad:
        key_mask = torch.ones(B, S, dtype=torch.int32)
        for b, n in pad.items():
            key_mask[b, S - n:] = 0
    cfg = dict(B=B, T=T, S=S, C=C, H=H, D=D, causal=causal, bidirectional=bidirectional,
               num_buckets=num_buckets, max_distance=max_distance)
    nx = Numerics(numerics)
    lq = xq.clone().requires_grad_(True)
    lkv = lq if self_attn else xkv.clone().requires_grad_(True)
    lw = [t.clone().requires_grad_(True) for t in w]
    lt = table.clone().requires_grad_(True) if bias else None
    out, att = attention_reference(lq, lkv, *lw, lt, key_mask, dout, cfg, nx)
    params = [("B", B), ("T", T), ("S", S), ("C", C), ("H", H), ("D", D), ("causal", causal),
              ("self", self_attn), ("bias", bias)]
    if bias:
        params += [("bidirectional", bidirectional), ("num_buckets", num_buckets),
                   ("max_distance", max_distance)]
    params += [("numerics", numerics), ("denormals", "keep")]
    fx = Fixture("attention", params)
    fx.input("xq", xq)
    if not self_attn:
        fx.input("xkv", xkv)
    for name, t in zip(("wq", "wk", "wv", "wo"), w):
        fx.input(name, t)
    if bias:
        fx.input("table", table)
    if key_mask is not None:
        fx.input("key_mask", key_mask)
    fx.input("dout", dout)
    fx.output("out", out, nx.tol())
    fx.output("att", att, nx.tol())
    fx.output("dxq", lq.grad, nx.tol(grad=True))
    if not self_attn:
        fx.output("dxkv", lkv.grad, nx.tol(grad=True))
    for name, t in zip(("dwq", "dwk", "dwv", "dwo"), lw):
        fx.output(name, t.grad, nx.tol(grad=True))
    if bias:
        fx.output("dtable", lt.grad, nx.tol(grad=True))
    return fx


def attention_fixtures():
    return [
        ("attn_encoder_fp32", attention_fixture(201, 2, 7, 7, 8, 2, 4, causal=False,
                                                self_attn=True, bias=True, bidirectional=True,
                                                pad={1: 2}), "bidirectional bias, padding"),
        ("attn_decoder_fp32", attention_fixture(202, 2, 7, 7, 8, 2, 4, causal=True,
                                                self_attn=True, bias=True, pad={0: 1}),
         "causal bias, padding"),
        ("attn_cross_fp32", attention_fixture(203, 2, 5, 7, 8, 2, 4, causal=False,
                                              self_attn=False, bias=False, pad={0: 3}),
         "cross-attention, encoder padding"),
        ("attn_decoder_bf16", attention_fixture(204, 2, 6, 6, 8, 2, 4, causal=True,
                                                self_attn=True, bias=True, numerics="bf16",
                                                pad={1: 1}), "causal bias, bf16 numerics"),
    ]


# ---- optimizers ------------------------------------------------------------------------------

# (name, count, rows, cols); with min_dim_size_to_factor 8: "w" 12 x 10 is factored by the
# threshold (rows > cols), "small" 6 x 7 is not, the expert stack is factored per matrix
# (factor_stacks, rows <= cols), the vector never.
OPT_TENSORS = [("w", 1, 12, 10), ("small", 1, 6, 7), ("experts", 3, 4, 6), ("norm", 1, 1, 16)]
OPT_LR = 2.0 ** -7  # exact in fp32, so C's (float)lr and torch's lr agree
OPT_STEPS = 3


def tensors_param():
    return ",".join("%s:%d:%d:%d" % t for t in OPT_TENSORS)


def opt_inputs(seed):
    gen = torch.Generator().manual_seed(seed)
    P = sum(c * r * k for _, c, r, k in OPT_TENSORS)
    params = normal(gen, P, std=0.2)
    grads = normal(gen, OPT_STEPS, P, std=0.5)
    grads[1] *= 3.0  # a larger second gradient: update clipping and v decay both matter
    return params, grads


def is_factored(count, rows, cols, cfg):
    if not cfg["factored"] or rows < 2 or cols < 2:
        return False
    if cfg["factor_stacks"] and count > 1:
        return True
    return rows >= cfg["min_dim_size_to_factor"] and cols >= cfg["min_dim_size_to_factor"]


def f32(v):
    return torch.tensor(v, dtype=F32)


def mean64(x, dim=None):
    """Mean accumulated in double, rounded to fp32."""
    x = x.to(F64)
    return (x.mean() if dim is None else x.mean(dim=dim)).to(F32)


def adafactor_matrix(p, g, v, m, cfg, sc):
    """One T5X Adafactor update of one matrix (optim.h's formulas); v is (v_row, v_col) or
    the full v; returns (p, v, m)."""
    rows, cols = p.shape
    scale = sc["lr"]
    if cfg["multiply_by_parameter_scale"]:
        rms = torch.sqrt((p.to(F64) ** 2).mean()).to(F32)
        ps = torch.max(rms, f32(cfg["epsilon2"]))
        if cfg["max_parameter_scale"] > 0:
            ps = torch.min(ps, f32(cfg["max_parameter_scale"]))
        scale = sc["lr"] * ps
    g2 = g * g + sc["eps1"]
    if isinstance(v, tuple):
        vr = sc["beta2"] * v[0] + sc["mix"] * mean64(g2, dim=1)
        vc = sc["beta2"] * v[1] + sc["mix"] * mean64(g2, dim=0)
        if rows <= cols:
            y = g * torch.rsqrt(vr / mean64(vr))[:, None] * torch.rsqrt(vc)[None, :]
        else:
            y = g * torch.rsqrt(vc / mean64(vc))[None, :] * torch.rsqrt(vr)[:, None]
        v = (vr, vc)
    else:
        v = sc["beta2"] * v + sc["mix"] * g2
        y = g * torch.rsqrt(v)
    if cfg["clipping_threshold"] > 0:
        rms_y = torch.sqrt((y.to(F64) ** 2).mean()).to(F32)
        y = y / torch.max(f32(1.0), rms_y / f32(cfg["clipping_threshold"]))
    u = scale * y
    if cfg["beta1"] > 0:
        m = sc["beta1"] * m + sc["one_minus_beta1"] * u
        u = m
    p = sc["decay"] * p - u if cfg["weight_decay"] != 0 else p - u
    return p, v, m


def adafactor_run(params, grads, cfg, tensors=OPT_TENSORS, lr=OPT_LR):
    """grads.shape[0] updates from step 0 of the (name, count, rows, cols) tensors; returns
    (params, state in optim.h's layout)."""
    mats = []  # (offset, count, rows, cols, factored)
    off = 0
    for _, count, rows, cols in tensors:
        mats.append((off, count, rows, cols, is_factored(count, rows, cols, cfg)))
        off += count * rows * cols
    p = params.clone()
    state = {}
    for step in range(grads.shape[0]):
        t = step + 1
        beta2 = f32(1.0 - t ** (-cfg["decay_rate"]))
        sc = {"lr": f32(lr), "beta2": beta2, "mix": f32(1.0) - beta2,
              "eps1": f32(cfg["epsilon1"]), "beta1": f32(cfg["beta1"]),
              "one_minus_beta1": f32(1.0 - cfg["beta1"]), "decay": f32(1.0 - cfg["weight_decay"])}
        g_all = grads[step]
        for off, count, rows, cols, factored in mats:
            n = rows * cols
            for c in range(count):
                at = off + c * n
                key = (off, c)
                if key not in state:
                    v0 = (torch.zeros(rows, dtype=F32), torch.zeros(cols, dtype=F32)) \
                        if factored else torch.zeros(rows, cols, dtype=F32)
                    state[key] = (v0, torch.zeros(rows, cols, dtype=F32))
                v, m = state[key]
                pm, v, m = adafactor_matrix(p[at:at + n].reshape(rows, cols),
                                            g_all[at:at + n].reshape(rows, cols), v, m, cfg, sc)
                p[at:at + n] = pm.reshape(-1)
                state[key] = (v, m)
    flat_v, flat_m = [], []
    for off, count, rows, cols, factored in mats:
        for c in range(count):
            v, m = state[(off, c)]
            flat_v += [v[0], v[1]] if factored else [v.reshape(-1)]
            flat_m.append(m.reshape(-1))
    state_out = torch.cat(flat_v + (flat_m if cfg["beta1"] > 0 else []))
    return p, state_out


ADAFACTOR_T5X = dict(factored=1, min_dim_size_to_factor=128, factor_stacks=1, decay_rate=0.8,
                     epsilon1=1e-30, epsilon2=1e-3, clipping_threshold=1.0,
                     multiply_by_parameter_scale=1, max_parameter_scale=0.0, beta1=0.0,
                     weight_decay=0.0)


def adafactor_fixture(seed, **over):
    cfg = dict(ADAFACTOR_T5X, **over)
    params, grads = opt_inputs(seed)
    p_out, state = adafactor_run(params, grads, cfg)
    fx = Fixture("optimizer", [("optimizer", "adafactor"), ("lr", OPT_LR),
                               ("steps", OPT_STEPS), ("step0", 0),
                               ("tensors", tensors_param())] + list(cfg.items()))
    fx.input("params", params)
    fx.input("grads", grads)
    fx.output("params_out", p_out, TOL_FP32)
    fx.output("state_out", state, TOL_FP32)
    return fx


def adamw_run(params, grads, lr=OPT_LR, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    """grads.shape[0] steps of torch.optim.AdamW; returns (params, [m | v])."""
    p = torch.nn.Parameter(params.clone())
    opt = torch.optim.AdamW([p], lr=lr, betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay, foreach=False)
    for step in range(grads.shape[0]):
        p.grad = grads[step].clone()
        opt.step()
    st = opt.state[p]
    return p.detach(), torch.cat([st["exp_avg"].reshape(-1), st["exp_avg_sq"].reshape(-1)])


def adamw_fixture(seed, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    params, grads = opt_inputs(seed)
    p_out, state = adamw_run(params, grads, OPT_LR, beta1, beta2, eps, weight_decay)
    fx = Fixture("optimizer", [("optimizer", "adamw"), ("lr", OPT_LR), ("steps", OPT_STEPS),
                               ("step0", 0), ("tensors", tensors_param()), ("beta1", beta1),
                               ("beta2", beta2), ("eps", eps),
                               ("weight_decay", weight_decay)])
    fx.input("params", params)
    fx.input("grads", grads)
    fx.output("params_out", p_out, TOL_FP32)
    fx.output("state_out", state, TOL_FP32)
    return fx


def optimizer_fixtures():
    return [
        ("opt_adafactor_t5x", adafactor_fixture(301, min_dim_size_to_factor=8),
         "T5X defaults, factoring threshold 8"),
        ("opt_adafactor_momentum", adafactor_fixture(302, min_dim_size_to_factor=8, beta1=0.9,
                                                     weight_decay=0.01,
                                                     max_parameter_scale=0.15),
         "momentum, weight decay, max parameter scale"),
        ("opt_adamw", adamw_fixture(303), "torch.optim.AdamW"),
    ]


# ---- the whole T5 / Switch model ----------------------------------------------------------------

RMSNORM_EPS = 1e-6


def t5_layout(cfg):
    """(name, count, rows, cols) of every parameter tensor, in model/t5.h's order."""
    C, F, D, H, V, E = cfg["C"], cfg["F"], cfg["D"], cfg["H"], cfg["V"], cfg.get("E", 0)
    A, NB = H * D, cfg["num_buckets"]
    FI = 2 * F if cfg["ffn"] == "geglu" else F

    def attn(prefix, bias):
        out = [(prefix + ".q", 1, C, A), (prefix + ".k", 1, C, A), (prefix + ".v", 1, C, A),
               (prefix + ".o", 1, A, C)]
        return out + ([(prefix + ".relative_attention_bias", 1, NB, H)] if bias else [])

    def mlp(prefix, block):
        if t5_is_switch(cfg, block):
            return [(prefix + ".router.classifier", 1, C, E), (prefix + ".experts.wi", E, C, FI),
                    (prefix + ".experts.wo", E, F, C)]
        return [(prefix + ".wi", 1, C, FI), (prefix + ".wo", 1, F, C)]

    out = [("shared", 1, V, C)]
    for i in range(cfg["Le"]):
        p = "encoder.block.%d.layer." % i
        out += attn(p + "0.SelfAttention", i == 0) + [(p + "0.layer_norm", 1, 1, C)]
        out += mlp(p + "1.mlp", i) + [(p + "1.layer_norm", 1, 1, C)]
    out.append(("encoder.final_layer_norm", 1, 1, C))
    for i in range(cfg["Ld"]):
        p = "decoder.block.%d.layer." % i
        out += attn(p + "0.SelfAttention", i == 0) + [(p + "0.layer_norm", 1, 1, C)]
        out += attn(p + "1.EncDecAttention", False) + [(p + "1.layer_norm", 1, 1, C)]
        out += mlp(p + "2.mlp", i) + [(p + "2.layer_norm", 1, 1, C)]
    out.append(("decoder.final_layer_norm", 1, 1, C))
    if not cfg["tied"]:
        out.append(("lm_head", 1, C, V))
    return out


def t5_is_switch(cfg, block):
    return cfg["switch"] and block % cfg["every"] == cfg["every"] - 1


def t5_views(theta, layout):
    """name -> view of the flat parameter vector: [rows, cols], [count, rows, cols] for
    stacks, [cols] for vectors."""
    views, off = {}, 0
    for name, count, rows, cols in layout:
        n = count * rows * cols
        shape = (count, rows, cols) if count > 1 else (cols,) if rows == 1 else (rows, cols)
        views[name] = theta[off:off + n].view(*shape)
        off += n
    return views


def rmsnorm(x, w):
    """T5 LayerNorm in fp32: rstd = 1 / sqrt(sum(x^2) / C + eps), out = w * (x * rstd)."""
    ss = seq_sum(x * x).unsqueeze(-1)
    r = 1.0 / torch.sqrt(ss / x.shape[-1] + RMSNORM_EPS)
    return w * (x * r)


def dense_ffn(x, wi, wo, ffn, nx):
    F = wo.shape[0]
    pre = nx.store(nx.mm(x, wi))
    act = gelu_new(pre[:, :F]) * pre[:, F:] if ffn == "geglu" else torch.relu(pre)
    return nx.store(nx.mm(nx.store(act), wo))


def cross_entropy(logits, targets, pad):
    """Mean over non-pad rows of lse - logit[target] (fp32 rows, double mean)."""
    rows = [n for n in range(logits.shape[0]) if targets[n] != pad]
    x = logits[rows]
    m = x.detach().max(dim=-1, keepdim=True).values
    lse = (m + log32(seq_sum(exp32(x - m)).unsqueeze(-1))).squeeze(-1)
    picked = x[torch.arange(len(rows)), targets[rows].to(torch.long)]
    return (lse - picked).to(F64).sum() / len(rows)


def t5_stack(x, P, prefix, cfg, nx, B, T, bias, self_hidden, enc=None, cross_hidden=None,
             switch_out=None):
    """One stack's blocks on x [B*T, C] (decoder when enc is given); Switch layers append
    their reference dicts to switch_out."""
    C, H, D = cfg["C"], cfg["H"], cfg["D"]
    for i in range(cfg["Ld" if enc is not None else "Le"]):
        p = "%s.block.%d.layer." % (prefix, i)
        a = p + "0.SelfAttention"
        h = nx.store(rmsnorm(x, P[p + "0.layer_norm"])).reshape(B, T, C)
        out, _ = attention_forward(h, h, P[a + ".q"], P[a + ".k"], P[a + ".v"], P[a + ".o"],
                                   bias, self_hidden, H, D, nx)
        x = nx.store(x + out.reshape(B * T, C))
        sub = 1
        if enc is not None:
            a = p + "1.EncDecAttention"
            h = nx.store(rmsnorm(x, P[p + "1.layer_norm"])).reshape(B, T, C)
            out, _ = attention_forward(h, enc, P[a + ".q"], P[a + ".k"], P[a + ".v"],
                                       P[a + ".o"], None, cross_hidden, H, D, nx)
            x = nx.store(x + out.reshape(B * T, C))
            sub = 2
        m = "%s%d.mlp" % (p, sub)
        h = nx.store(rmsnorm(x, P["%s%d.layer_norm" % (p, sub)]))
        if t5_is_switch(cfg, i):
            out, ref = switch_forward(h, P[m + ".router.classifier"], P[m + ".experts.wi"],
                                      P[m + ".experts.wo"], cfg, nx)
            switch_out.append(ref)
        else:
            out = dense_ffn(h, P[m + ".wi"], P[m + ".wo"], cfg["ffn"], nx)
        x = nx.store(x + out)
    return x


def t5_forward(P, inputs, dec_in, targets, cfg, nx):
    """The encoder-decoder of model/t5.h (dropout off): returns (loss, switch refs). Stored
    activations (bf16 numerics): embeddings, norm outputs, sublayer outputs, residual sums,
    logits, as model/layers.h's forward functions store them."""
    B, Ti = inputs.shape
    To = dec_in.shape[1]
    C, pad = cfg["C"], cfg["pad_id"]
    nb, md = cfg["num_buckets"], cfg["max_distance"]
    refs = []
    enc_bias = position_bias(P["encoder.block.0.layer.0.SelfAttention.relative_attention_bias"],
                             Ti, Ti, True, nb, md)
    enc_mask = (inputs != pad).to(torch.int32)
    x = nx.store(P["shared"][inputs.reshape(-1).to(torch.long)])
    x = t5_stack(x, P, "encoder", cfg, nx, B, Ti, enc_bias,
                 hidden_keys(B, Ti, Ti, False, enc_mask), switch_out=refs)
    enc = nx.store(rmsnorm(x, P["encoder.final_layer_norm"])).reshape(B, Ti, C)
    dec_bias = position_bias(P["decoder.block.0.layer.0.SelfAttention.relative_attention_bias"],
                             To, To, False, nb, md)
    y = nx.store(P["shared"][dec_in.reshape(-1).to(torch.long)])
    y = t5_stack(y, P, "decoder", cfg, nx, B, To, dec_bias,
                 hidden_keys(B, To, To, True, (targets != pad).to(torch.int32)), enc=enc,
                 cross_hidden=hidden_keys(B, To, Ti, False, enc_mask), switch_out=refs)
    y = nx.store(rmsnorm(y, P["decoder.final_layer_norm"]))
    if cfg["tied"]:
        logits = nx.mm(y * f32(1.0 / math.sqrt(C)), P["shared"].t())
    else:
        logits = nx.mm(y, P["lm_head"])
    logits = nx.store(logits)
    return cross_entropy(logits, targets.reshape(-1), pad), refs


def t5_init(gen, layout, cfg):
    """Random parameters (not the C init: any values serve a comparison)."""
    parts = []
    for name, count, rows, cols in layout:
        n = count * rows * cols
        if name.endswith("layer_norm"):
            t = 1.0 + normal(gen, n, std=0.1)
        elif name == "shared":
            t = normal(gen, n)
        elif name.endswith("relative_attention_bias"):
            t = normal(gen, n, std=0.5)
        elif name.endswith("router.classifier"):
            t = normal(gen, rows, cols, std=rows ** -0.5)
            t[:, 0] += cfg["router_favour"]  # expert 0 popular: capacity overflow
            t = t.reshape(-1)
        else:
            t = normal(gen, n, std=rows ** -0.5)
        parts.append(t.to(F32))
    return torch.cat(parts)


T5_PARAM_KEYS = ["B", "T_in", "T_out", "C", "F", "D", "H", "Le", "Ld", "V", "ffn", "tied",
                 "num_buckets", "max_distance", "pad_id", "switch", "E", "every", "top_k",
                 "capacity_factor", "min_capacity", "group_size", "capacity_rounding",
                 "drop_priority", "router_dtype", "aux_alpha", "z_coef", "numerics", "lr"]


def t5_fixture(seed, **over):
    cfg = dict(B=2, T_in=6, T_out=5, C=8, F=12, D=4, H=2, Le=2, Ld=2, V=32, ffn="relu",
               tied=True, num_buckets=8, max_distance=16, pad_id=0, switch=True, E=4, every=2,
               top_k=1, capacity_factor=1.0, min_capacity=1, group_size=0,
               capacity_rounding="round", drop_priority="token_order", router_dtype="fp32",
               aux_alpha=0.05, z_coef=0.01, numerics="fp32", lr=OPT_LR, router_favour=0.5,
               renormalize=False, aux_count_all=False)
    cfg.update(over)
    gen = torch.Generator().manual_seed(seed)
    layout = t5_layout(cfg)
    B, Ti, To, V, pad = cfg["B"], cfg["T_in"], cfg["T_out"], cfg["V"], cfg["pad_id"]
    theta0 = t5_init(gen, layout, cfg)
    inputs = torch.randint(1, V, (B, Ti), generator=gen, dtype=torch.int32)
    inputs[1, Ti - 2:] = pad  # padded encoder keys
    targets = torch.randint(1, V, (B, To), generator=gen, dtype=torch.int32)
    targets[0, To - 1] = pad  # a padded target: ignored by the loss, masked as a key
    dec_in = torch.cat([torch.full((B, 1), pad, dtype=torch.int32), targets[:, :-1]], dim=1)
    nx = Numerics(cfg["numerics"])
    theta = theta0.clone().requires_grad_(True)
    loss, refs = t5_forward(t5_views(theta, layout), inputs, dec_in, targets, cfg, nx)
    aux = sum(r["aux"] for r in refs)
    z = sum(r["z"] for r in refs)
    total = loss + aux + z
    total.backward()
    grad = theta.grad.detach()
    choices = torch.cat([torch.where(r["slot"] < 0, torch.full_like(r["expert"], -1),
                                     r["expert"]).reshape(-1) for r in refs])
    p_ada, _ = adafactor_run(theta0, grad[None], ADAFACTOR_T5X, layout, cfg["lr"])
    p_adamw, _ = adamw_run(theta0, grad[None], cfg["lr"])
    fx = Fixture("t5_model", [(k, cfg[k]) for k in T5_PARAM_KEYS] + [("denormals", "keep")])
    fx.input("params", theta0)
    fx.input("inputs", inputs)
    fx.input("decoder_inputs", dec_in)
    fx.input("targets", targets)
    for name, v in (("loss", loss), ("aux_loss", aux), ("z_loss", z), ("total", total)):
        fx.output(name, v.detach().to(F32), nx.tol())
    fx.output("expert_choice", choices)
    for prefix, flat, tol in (("grad.", grad, nx.tol(grad=True)),
                              ("adafactor.", p_ada, nx.tol(grad=True)),
                              ("adamw.", p_adamw, nx.tol(grad=True))):
        off = 0
        for name, count, rows, cols in layout:
            n = count * rows * cols
            fx.output(prefix + name, flat[off:off + n], tol)
            off += n
    drops = int((choices < 0).sum())
    assert drops > 0, "t5 fixture: no dropped token"
    return fx, "loss=%.4f aux=%.4f z=%.4f dropped=%d/%d" % (loss, aux, z, drops, len(choices))


def t5_fixtures():
    out = []
    fx, note = t5_fixture(401)
    out.append(("t5_switch_tied_fp32", fx, note))
    # GEGLU, untied head, top-2 with a bf16 router, batch-prioritized groups of 5
    fx, note = t5_fixture(402, T_in=5, T_out=5, ffn="geglu", tied=False, top_k=2,
                          router_dtype="bf16", drop_priority="batch_prioritized", group_size=5,
                          capacity_factor=1.5, every=1, Le=1, Ld=1)
    out.append(("t5_switch_top2_geglu_fp32", fx, note))
    # bf16 numerics throughout (operands, stored activations), bf16 router
    fx, note = t5_fixture(403, numerics="bf16", router_dtype="bf16")
    out.append(("t5_switch_bf16", fx, note))
    return out


# ---- main ------------------------------------------------------------------------------------

def main(argv):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "fixtures")
    os.makedirs(outdir, exist_ok=True)
    total = 0
    for name, fx, note in (switch_fixtures() + attention_fixtures() +
                          optimizer_fixtures() + t5_fixtures()):
        data = fx.to_bytes()
        with open(os.path.join(outdir, name + ".bin"), "wb") as f:
            f.write(data)
        total += len(data)
        print("%-28s %7d bytes  %s" % (name + ".bin", len(data), note))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main(sys.argv)
