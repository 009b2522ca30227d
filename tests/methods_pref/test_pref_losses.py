"""Each custom loss against a hand computation; TRL's DPO losses on fixed log-probs."""
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from workbench.methods.losses import aft_loss, asft_loss, bco_loss, lambda_weights, lipo_lambda_loss


def sp(x):  # softplus, by hand
    return math.log1p(math.exp(x))


def lsig(x):
    return -sp(-x)


# ---- TRL's DPO loss code on fixed log-probs ------------------------------------------------
def trl_dpo_loss(loss_type, chosen, rejected, ref_chosen, ref_rejected, lengths, beta=0.1):
    """Run trl.DPOTrainer._compute_loss itself on a stand-in model that returns fixed
    per-token log-probs (precomputed reference log-probs come in the batch)."""
    from trl import DPOTrainer

    b = len(chosen)
    width = max(lengths) + 1
    per_token = torch.zeros(2 * b, width - 1)
    completion = torch.zeros(2 * b, width, dtype=torch.long)
    for i, (total, n) in enumerate(zip(list(chosen) + list(rejected), list(lengths) * 2)):
        per_token[i, :n] = total / n
        completion[i, 1:n + 1] = 1
    out = SimpleNamespace(log_probs=per_token, entropy=torch.zeros_like(per_token),
                          mean_logits=torch.zeros_like(per_token),
                          is_top1=torch.zeros_like(per_token, dtype=torch.bool))
    ident = lambda x: x  # noqa: E731
    fake = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device="cpu", gather=ident, gather_for_metrics=ident),
        aux_loss_enabled=False, precompute_ref_logps=True, ld_alpha=None, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        args=SimpleNamespace(discopop_tau=0.05))
    inputs = {"input_ids": torch.ones(2 * b, width, dtype=torch.long),
              "attention_mask": torch.ones(2 * b, width, dtype=torch.long),
              "completion_mask": completion, "ref_chosen_logps": torch.tensor(ref_chosen),
              "ref_rejected_logps": torch.tensor(ref_rejected)}
    loss = DPOTrainer._compute_loss(fake, lambda **kw: out, inputs, False)
    return loss.item(), fake._metrics["train"]


CASE = dict(chosen=[-10.0, -20.0], rejected=[-12.0, -15.0], ref_chosen=[-11.0, -18.0], ref_rejected=[-11.5, -16.0],
            lengths=[4, 5])


def _hand(loss_type, beta=0.1):
    c, r, rc, rr, n = (CASE[k] for k in ("chosen", "rejected", "ref_chosen", "ref_rejected", "lengths"))
    out = []
    for i in range(2):
        delta = (c[i] - rc[i]) - (r[i] - rr[i])
        if loss_type == "sigmoid":
            out.append(-lsig(beta * delta))
        elif loss_type == "hinge":
            out.append(max(0.0, 1 - beta * delta))
        elif loss_type == "ipo":  # TRL normalises the log-ratios by completion length
            d = (c[i] - rc[i]) / n[i] - (r[i] - rr[i]) / n[i]
            out.append((d - 1 / (2 * beta)) ** 2)
        elif loss_type == "sigmoid_norm":  # LN-DPO
            d = (c[i] - rc[i]) / n[i] - (r[i] - rr[i]) / n[i]
            out.append(-lsig(beta * d))
    return sum(out) / len(out)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "sigmoid_norm"])
def test_trl_dpo_losses_match_hand_computation(loss_type):
    loss, metrics = trl_dpo_loss(loss_type, **CASE)
    assert loss == pytest.approx(_hand(loss_type), rel=1e-5)
    # the logged reward metrics are β·log-ratios
    assert metrics["rewards/chosen"][0] == pytest.approx(0.1 * ((-10 + 11) + (-20 + 18)) / 2, rel=1e-5)
    assert metrics["rewards/accuracies"][0] == pytest.approx(0.5)  # pair 1 right, pair 2 wrong


def test_lipo_with_two_responses_is_weighted_dpo():
    """List size 2 with labels (1, 0): LiPO-λ = Δ·DPO sigmoid, Δ = 1 − 1/log2(3)."""
    loss, _ = trl_dpo_loss("sigmoid", **CASE)
    c, r, rc, rr = (torch.tensor(CASE[k]) for k in ("chosen", "rejected", "ref_chosen", "ref_rejected"))
    scores = 0.1 * torch.stack([c - rc, r - rr], dim=1)
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert lipo_lambda_loss(scores, labels).item() == pytest.approx((1 - 1 / math.log2(3)) * loss, rel=1e-5)


# ---- LiPO-λ --------------------------------------------------------------------------------------
def test_lambda_weights_by_hand():
    scores = torch.tensor([[0.5, 2.0, -1.0]])   # current ranks: resp1 → 1, resp0 → 2, resp2 → 3
    labels = torch.tensor([[2.0, 1.0, 0.0]])
    w = lambda_weights(scores, labels)[0]
    inv = {1: 1.0, 2: 1 / math.log2(3), 3: 1 / math.log2(4)}
    gain = {0: 3.0, 1: 1.0, 2: 0.0}             # 2^ψ − 1
    rank = {0: 2, 1: 1, 2: 3}
    for i in range(3):
        for j in range(3):
            want = abs(gain[i] - gain[j]) * abs(inv[rank[i]] - inv[rank[j]]) if labels[0, i] > labels[0, j] else 0.0
            assert w[i, j].item() == pytest.approx(want, abs=1e-6)


def test_lipo_loss_by_hand_and_padding():
    scores = torch.tensor([[0.5, 2.0, -1.0, 9.0]])
    labels = torch.tensor([[2.0, 1.0, 0.0, 5.0]])
    valid = torch.tensor([[True, True, True, False]])  # the 4th slot is padding and must not count
    w = lambda_weights(scores[:, :3], labels[:, :3])[0]
    s = scores[0, :3].tolist()
    want = sum(w[i, j].item() * sp(-(s[i] - s[j])) for i in range(3) for j in range(3))
    assert lipo_lambda_loss(scores, labels, valid).item() == pytest.approx(want, rel=1e-6)


# ---- AFT ---------------------------------------------------------------------------------------
def test_aft_binary_by_hand():
    s = torch.tensor([[-1.0, -2.0, -1.5, -4.0]])      # two positives (ψ=1), two negatives (ψ=0)
    psi = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    pos, neg = [-1.0, -2.0], [-1.5, -4.0]
    align = math.log(1 + sum(math.exp(n - p) for p in pos for n in neg))
    assert aft_loss(s, psi, constraint=False).item() == pytest.approx(align, rel=1e-6)
    # constraint: negatives may sit at most B below the lowest positive (−2): floor −3 → −4 pays 1
    assert aft_loss(s, psi, boundary=1.0).item() == pytest.approx(align + 1.0, rel=1e-6)
    assert aft_loss(s, psi, boundary=3.0).item() == pytest.approx(align, rel=1e-6)


def test_aft_ranking_and_constraint_gradient():
    s = torch.tensor([[-1.0, -2.0, -5.0]], requires_grad=True)   # ψ: 2 > 1 > 0
    psi = torch.tensor([[2.0, 1.0, 0.0]])
    terms = [(-1.0, -2.0), (-1.0, -5.0), (-2.0, -5.0)]
    align = math.log(1 + sum(math.exp(n - p) for p, n in terms))
    # response 2's lowest better score is −2 → floor −3 (B=1): pays 2; response 1's floor −2: pays 0
    loss = aft_loss(s, psi, boundary=1.0)
    assert loss.item() == pytest.approx(align + 2.0, rel=1e-6)
    loss.backward()
    # the constraint pushes the worst response *up* (negative gradient) despite the alignment term
    assert s.grad[0, 2].item() < 0
    s2 = s.detach().clone().requires_grad_(True)
    aft_loss(s2, psi, constraint=False).backward()
    assert s2.grad[0, 2].item() > 0    # without the constraint it is pushed down further


# ---- ASFT / BCO ---------------------------------------------------------------------------------
def test_asft_by_hand():
    c, r, nll = torch.tensor([-0.5, -1.0]), torch.tensor([-2.0, -0.2]), torch.tensor([0.5, 1.0])
    want = sum(nw + 2.0 * (-lsig(0.5 * ci) - lsig(-0.5 * ri)) for nw, ci, ri in
               zip([0.5, 1.0], [-0.5, -1.0], [-2.0, -0.2])) / 2
    got = asft_loss(c, r, nll, beta=0.5, lam=2.0, nll_weight=1.0).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_asft_terms_are_absolute_not_a_margin():
    """ASFT's push on the rejected response depends on that response alone and fades as its
    likelihood falls; DPO's depends only on the margin, so a low chosen keeps pushing the
    rejected one down."""
    def grad_on_rejected(chosen, rejected, fn):
        r = torch.tensor([rejected], requires_grad=True)
        fn(torch.tensor([chosen]), r).backward()
        return r.grad.item()

    asft = lambda c, r: asft_loss(c, r, torch.tensor([0.0]), nll_weight=0.0)  # noqa: E731
    dpo = lambda c, r: -F.logsigmoid(c - r).mean()  # noqa: E731
    assert grad_on_rejected(-1.0, -3.0, asft) == pytest.approx(grad_on_rejected(-9.0, -3.0, asft))
    assert grad_on_rejected(-1.0, -8.0, asft) < 0.01 * grad_on_rejected(-1.0, -1.0, asft)
    assert grad_on_rejected(-9.0, -3.0, dpo) > 5 * grad_on_rejected(-1.0, -3.0, dpo)


def test_bco_by_hand():
    rewards, labels = torch.tensor([0.3, -0.2, 0.1]), torch.tensor([True, False, False])
    delta = 0.05
    want = (-lsig(0.3 - delta) - lsig(-(-0.2 - delta)) - lsig(-(0.1 - delta))) / 3
    assert bco_loss(rewards, labels, delta).item() == pytest.approx(want, rel=1e-6)
