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


def test_lipo_lambda_matches_paper_worked_case():
    """LiPO-λ (Liu et al. 2024, Eq. for Δ_ij): Δ_ij = |G_i − G_j|·|1/D(τ_i) − 1/D(τ_j)| with
    gain G = 2^ψ − 1, discount D(τ) = log2(1 + τ), τ = rank under the *model's* scores; loss
    Σ_{ψ_i > ψ_j} Δ_ij·log(1 + exp(−(s_i − s_j))). Worked by hand:
      ψ = (2, 0, 1), s = (1, 3, 2) → τ = (3, 1, 2); G = (3, 0, 1); 1/D = (0.5, 1, 0.6309298)
      Δ_01 = 3·|0.5 − 1| = 1.5,  Δ_02 = 2·|0.5 − 0.6309298| = 0.2618595,
      Δ_21 = 1·|0.6309298 − 1| = 0.3690702
      L = 1.5·log(1+e²) + 0.2618595·log(1+e) + 0.3690702·log(1+e)
        = 1.5·2.1269280 + (0.2618595 + 0.3690702)·1.3132617 = 4.0189679"""
    scores = torch.tensor([[1.0, 3.0, 2.0]], requires_grad=True)
    labels = torch.tensor([[2.0, 0.0, 1.0]])
    w = lambda_weights(scores, labels)[0]
    want = torch.tensor([[0.0, 1.5, 0.2618595],
                         [0.0, 0.0, 0.0],
                         [0.0, 0.3690702, 0.0]])
    assert torch.allclose(w, want, atol=1e-6)
    loss = lipo_lambda_loss(scores, labels)
    assert loss.item() == pytest.approx(4.0189679, rel=1e-6)
    # Δ carries no gradient: ∂L/∂s_1 = Σ_i Δ_i1·σ(s_1 − s_i) = 1.5·σ(2) + 0.3690702·σ(1)
    loss.backward()
    assert scores.grad[0, 1].item() == pytest.approx(1.5 * 0.8807971 + 0.3690702 * 0.7310586, rel=1e-5)


# ---- AFT ---------------------------------------------------------------------------------------
def test_aft_matches_paper_worked_case():
    """AFT's boundary-constrained alignment loss plus its SFT term, binary feedback, worked by
    hand from the paper's formula (Wang et al. 2023): positives s = (−1, −2), negatives
    s = (−1.5, −4), B = 1 → T = min(positives) − B = −3.
      alignment  = log(1 + e^(−1.5+1) + e^(−4+1) + e^(−1.5+2) + e^(−4+2)) = 1.2355803
      constraint = log(1 + e^(T+1.5) + e^(T+4)) = log(1 + e^−1.5 + e^1) = 1.3715390
      SFT        = mean NLL of the positives = (1 + 2)/2 = 1.5
      L          = 4.1071193
    Run through AFTTrainer.list_loss with AFTArgs' defaults, so the defaults (constraint on,
    soft form, B = 1, SFT weight 1) and the length normalisation are pinned too."""
    from workbench.methods.aft import AFTArgs, AFTTrainer

    lengths = torch.tensor([[4.0, 2.0, 5.0, 1.0]])
    logps = torch.tensor([[-1.0, -2.0, -1.5, -4.0]]) * lengths     # totals; mean log-probs as above
    psi = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    valid = torch.ones_like(psi, dtype=torch.bool)
    fake = SimpleNamespace(method_config=AFTArgs())
    assert AFTTrainer.list_loss(fake, logps, lengths, None, psi, valid).item() == pytest.approx(4.1071193, rel=1e-6)
    s = logps / lengths
    assert aft_loss(s, psi, nll_weight=0.0).item() == pytest.approx(1.2355803 + 1.3715390, rel=1e-6)
    assert aft_loss(s, psi, constraint=False, nll_weight=0.0).item() == pytest.approx(1.2355803, rel=1e-6)


def test_aft_ranking_worked_case_and_constraint_gradient():
    """Ranking feedback ψ = 2 > 1 > 0, s = (−1, −2, −5), B = 1. Each worse response's floor is
    the lowest score ranked above it, minus B (our reading of the ranking extension):
      alignment  = log(1 + e^(−2+1) + e^(−5+1) + e^(−5+2)) = 0.3618490
      constraint = log(1 + e^(−2−(−2)) + e^(−3−(−5))) = log(2 + e²) = 2.2395448
      SFT        = −s of the top response = 1
      L          = 3.6013938"""
    s = torch.tensor([[-1.0, -2.0, -5.0]], requires_grad=True)
    psi = torch.tensor([[2.0, 1.0, 0.0]])
    loss = aft_loss(s, psi, boundary=1.0)
    assert loss.item() == pytest.approx(3.6013938, rel=1e-6)
    loss.backward()
    # the constraint pushes the worst response *up* (negative gradient) despite the alignment term
    assert s.grad[0, 2].item() < 0
    s2 = s.detach().clone().requires_grad_(True)
    aft_loss(s2, psi, constraint=False).backward()
    assert s2.grad[0, 2].item() > 0    # without the constraint it is pushed down further


def test_aft_hinge_form_and_sft_term_scope():
    """constraint_form="hinge" (the earlier reading, kept as an option): each negative pays
    max(0, T − s). The SFT term skips lists where every response is tied (no positive/negative
    split) and ignores padding."""
    s = torch.tensor([[-1.0, -2.0, -1.5, -4.0]])
    psi = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    align = 1.2355803
    assert aft_loss(s, psi, boundary=1.0, constraint_form="hinge", nll_weight=0.0).item() == \
        pytest.approx(align + 1.0, rel=1e-6)                   # −4 sits 1 below the floor −3
    assert aft_loss(s, psi, boundary=3.0, constraint_form="hinge", nll_weight=0.0).item() == \
        pytest.approx(align, rel=1e-6)
    tied = torch.tensor([[-1.0, -2.0, -3.0, 9.0]])
    same = torch.tensor([[0.0, 0.0, 0.0, 5.0]])
    pad = torch.tensor([[True, True, True, False]])
    assert aft_loss(tied, same, pad).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError):
        aft_loss(s, psi, constraint_form="hard")


# ---- ASFT / BCO ---------------------------------------------------------------------------------
def test_asft_matches_paper_odds_formula():
    """ASFT (Wang et al. 2024): L = NLL(y_w) − λ·[log σ(r(y_w)) + log σ(−r(y_l))] with the odds
    score r(y) = log(P/(1 − P)), P = exp(mean token log-prob). Worked by hand, P_w = 0.5,
    P_l = 0.2 (s = log P):
      r_w = log(0.5/0.5) = 0          → −log σ(0) = log 2 = 0.6931472
      r_l = log(0.2/0.8) = −log 4     → −log σ(log 4) = −log(4/5) = 0.2231436
      (= −log P_w − log(1 − P_l), the identity σ(r) = P)
      NLL(y_w) = 0.6931472, λ = 0.5:  L = 0.6931472 + 0.5·(0.6931472 + 0.2231436) = 1.1512926
    With the tempering β = 2: −log σ(2·log 4) = log(17/16) = 0.0606246 for the rejected term."""
    c = torch.tensor([math.log(0.5)])
    r = torch.tensor([math.log(0.2)])
    nll = torch.tensor([0.6931472])
    assert asft_loss(c, r, nll, lam=0.5).item() == pytest.approx(1.1512926, rel=1e-6)
    assert asft_loss(c, r, nll, nll_weight=0.0).item() == pytest.approx(0.6931472 + 0.2231436, rel=1e-6)
    assert asft_loss(c, r, nll, beta=2.0, nll_weight=0.0).item() == pytest.approx(0.6931472 + 0.0606246, rel=1e-6)
    # the defaults are the paper's weights: SFT term 1, λ 1, β 1
    from workbench.methods.asft import ASFTArgs

    m = ASFTArgs()
    assert (m.nll_weight, m.lam, m.beta, m.length_normalize) == (1.0, 1.0, 1.0, True)
    # a response the model already always produces (P → 1) stays finite
    assert torch.isfinite(asft_loss(torch.tensor([0.0]), r, nll))


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
