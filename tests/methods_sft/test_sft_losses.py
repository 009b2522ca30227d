"""Each SFT-variant loss against a hand computation on small tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.methods.losses import sft as L


def _batch():
    # batch 1, 3 positions, vocab 2; the first label is prompt (-100), the next two are trained
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(4.0)]]])
    labels = torch.tensor([[-100, 1, 1]])
    return logits, labels


def test_shift_aligns_next_token_and_drops_virtual_positions():
    logits, labels = _batch()
    _, token_logp, mask = L.token_log_probs(logits, labels)
    # position 0 predicts label[1]=1 with p=1/2; position 1 predicts label[2]=1 with p=1/4
    assert mask.tolist() == [[True, True]]
    assert torch.allclose(token_logp.exp(), torch.tensor([[0.5, 0.25]]))
    # prompt tuning prepends virtual-token positions to the logits: they are ignored
    virtual = torch.cat([torch.randn(1, 4, 2), logits], dim=1)
    assert torch.allclose(L.token_log_probs(virtual, labels)[1], token_logp)


def test_nll_and_dft_by_hand():
    logits, labels = _batch()
    _, token_logp, mask = L.token_log_probs(logits, labels)
    nll = (math.log(2) + math.log(4)) / 2
    dft = (0.5 * math.log(2) + 0.25 * math.log(4)) / 2
    assert L.nll_loss(token_logp, mask).item() == pytest.approx(nll, rel=1e-6)
    assert L.dft_loss(token_logp, mask).item() == pytest.approx(dft, rel=1e-6)
    # an explicit denominator (tokens of the whole accumulated batch) replaces the count
    assert L.dft_loss(token_logp, mask, denom=4).item() == pytest.approx(dft * 2 / 4, rel=1e-6)


def test_dft_gradient_is_probability_weighted_nll_gradient():
    logits, labels = _batch()
    logits = logits.clone().requires_grad_(True)
    _, token_logp, mask = L.token_log_probs(logits, labels)
    L.dft_loss(token_logp, mask).backward()
    g_dft = logits.grad.clone()
    logits.grad = None
    _, token_logp, mask = L.token_log_probs(logits, labels)
    L.nll_loss(token_logp, mask).backward()
    # sg(p): the weight is a constant, so each position's gradient is p_t × the NLL gradient
    assert torch.allclose(g_dft[0, 0], 0.5 * logits.grad[0, 0])
    assert torch.allclose(g_dft[0, 1], 0.25 * logits.grad[0, 1])


def test_token_kl_both_directions_by_hand():
    p = torch.tensor([[[0.75, 0.25]]]).log()
    q = torch.tensor([[[0.5, 0.5]]]).log()
    kl_pq = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kl_qp = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert L.token_kl(p, q, "policy_ref").item() == pytest.approx(kl_pq, rel=1e-6)
    assert L.token_kl(p, q, "ref_policy").item() == pytest.approx(kl_qp, rel=1e-6)
    # the ASFT authors' F.kl_div(log π_θ, π_ref) is the ref_policy direction
    assert F.kl_div(p, q.exp(), reduction="none").sum().item() == pytest.approx(kl_qp, rel=1e-6)
    assert L.token_kl(q, q).abs().item() < 1e-7
    with pytest.raises(ValueError):
        L.token_kl(p, q, "sideways")


def test_softmax_reweighting_by_hand():
    # two samples: mean token losses 1.0 and 3.0
    token_logp = torch.tensor([[-1.0, -1.0], [-3.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    loss, w = L.reweighted_loss(token_logp, mask, tau=2.0)
    e1, e3 = math.exp(0.5), math.exp(1.5)
    w1, w3 = 2 * e1 / (e1 + e3), 2 * e3 / (e1 + e3)
    assert w.tolist() == pytest.approx([w1, w3], rel=1e-6)
    assert loss.item() == pytest.approx((w1 * 1.0 + w3 * 3.0) / 2, rel=1e-6)
    # τ → ∞: plain per-sample mean
    loss_flat, w_flat = L.reweighted_loss(token_logp, mask, tau=1e9)
    assert w_flat.tolist() == pytest.approx([1.0, 1.0]) and loss_flat.item() == pytest.approx(2.0)


def test_reweighting_ignores_samples_without_trained_tokens():
    token_logp = torch.tensor([[-2.0], [0.0]])
    mask = torch.tensor([[True], [False]])
    loss, w = L.reweighted_loss(token_logp, mask, tau=1.0)
    assert w.tolist() == pytest.approx([1.0, 0.0]) and loss.item() == pytest.approx(2.0)
