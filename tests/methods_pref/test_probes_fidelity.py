"""The preference probes against hand computations and the paper:

- KL to the reference: the exact per-position KL over the vocabulary on sampled text,
  Σ_t KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)), computed here with plain softmax on the two models'
  logits, one unpadded sequence at a time; never negative; with its standard error.
- Idealised ranking accuracy (Chen et al., "Preference Learning Algorithms Do Not Learn
  Preference Rankings", Thm. 3.1): the DPO optimum ranks y_w over y_l iff
  π_ref(y_w|x)/π_ref(y_l|x) > ((1 − α)/α)^(1/β); checked on a case worked by hand.
- The DPO truncation trap: pairs whose chosen and rejected are identical within max_length
  are counted before training (warning), and a run where every pair is cut is refused."""
import contextlib
import copy
import math
import types
import warnings

import pytest
import torch

from workbench import TrainConfig, train
from workbench.errors import WorkbenchError
from workbench.methods._preference import TruncationWarning, check_truncation, truncation_ties
from workbench.methods.preference_metrics import (
    encode,
    idealised_ranking_accuracy,
    preference_probe,
    sample_responses,
    sequence_kl,
    sequence_logps,
)
from workbench.models import load_model


@pytest.fixture(scope="module")
def models():
    """tiny-llama as the policy; the reference is a copy with perturbed weights (so KL > 0)."""
    policy, tok = load_model("tiny-llama", device="cpu")
    policy.eval()
    ref = copy.deepcopy(policy)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy, ref, tok


def _hand_kl(policy, ref, prompt_ids, resp_ids) -> float:
    """Σ over response positions of Σ_v p_v (log p_v − log q_v), with plain softmax, no padding."""
    ids = torch.tensor([prompt_ids + resp_ids])
    with torch.no_grad():
        p = torch.softmax(policy(input_ids=ids).logits[0].double(), -1)
        q = torch.softmax(ref(input_ids=ids).logits[0].double(), -1)
    total = 0.0
    for t in range(len(prompt_ids) - 1, len(prompt_ids) + len(resp_ids) - 1):  # positions predicting the response
        total += float((p[t] * (torch.log(p[t]) - torch.log(q[t]))).sum())
    return total


def _hand_logp(model, prompt_ids, resp_ids) -> float:
    ids = torch.tensor([prompt_ids + resp_ids])
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0].double(), -1)
    return sum(math.log(float(probs[t, ids[0, t + 1]]))
               for t in range(len(prompt_ids) - 1, len(prompt_ids) + len(resp_ids) - 1))


PROMPTS = ["The capital of France is", "Write a haiku about rain:", "2 + 2 =", "List three colours:"]


def test_sequence_logps_equals_each_sequence_alone_and_cuts_at_max_length(models, monkeypatch):
    import workbench.methods.preference_metrics as pm

    policy, _, tok = models
    monkeypatch.setattr(pm, "CHUNK_TOKENS", 5)  # several packed chunks
    seqs = [encode(tok, p, r) for p, r in zip(PROMPTS, [" Paris.", " Drops fall on the roof", " 4", " red, blue"])]
    pad = tok.pad_token_id or 0
    got = sequence_logps(policy, seqs, pad_id=pad)
    want = [_hand_logp(policy, p, r) for p, r in seqs]
    assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-4)
    # cut inside the longest response; a prompt longer than the cut leaves nothing to score
    cut = max(len(p) for p, _ in seqs) + 2
    got = sequence_logps(policy, seqs + [(list(range(5, 5 + cut + 3)), [7, 8])], max_length=cut, pad_id=pad)
    want = [_hand_logp(policy, p, r[:cut - len(p)]) for p, r in seqs] + [0.0]
    assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert any(len(p) + len(r) > cut for p, r in seqs)  # the cut did cut


def test_sequence_kl_equals_hand_computation_and_is_nonnegative(models, monkeypatch):
    import workbench.methods.preference_metrics as pm

    policy, ref, tok = models
    # different lengths packed side by side, in chunks of ≥ 7 response tokens (2-3 sequences)
    monkeypatch.setattr(pm, "CHUNK_TOKENS", 7)
    seqs = sample_responses(policy, tok, PROMPTS, max_new_tokens=6, seed=3)
    assert len({len(p) + len(r) for p, r in seqs}) > 1
    got = sequence_kl(policy, lambda: contextlib.nullcontext(ref), seqs, pad_id=tok.pad_token_id or 0)
    want = torch.tensor([_hand_kl(policy, ref, p, r) for p, r in seqs], dtype=torch.float64)
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-5), (got, want)
    assert (got >= 0).all() and (want > 0).all()
    # the same model as its own reference: exactly zero
    same = sequence_kl(policy, lambda: contextlib.nullcontext(policy), seqs, pad_id=tok.pad_token_id or 0)
    assert torch.equal(same, torch.zeros(len(seqs)))


def test_probe_kl_is_the_exact_kl_with_its_standard_error(models):
    """The probe's kl_to_ref is the mean of the hand KLs of its own samples (the old
    estimate, a mean of log π(y) − log π_ref(y), is not), and kl_to_ref_se their std/√n."""
    policy, ref, tok = models
    rows = [{"prompt": p, "chosen": " yes", "rejected": " no"} for p in PROMPTS]
    out = preference_probe(policy, lambda: contextlib.nullcontext(ref), tok, rows, max_pairs=0,
                           kl_prompts=len(PROMPTS), max_new_tokens=6, seed=7)
    seqs = sample_responses(policy, tok, PROMPTS, max_new_tokens=6, seed=7)  # the probe's samples
    hand = [_hand_kl(policy, ref, p, r) for p, r in seqs]
    mean = sum(hand) / len(hand)
    se = math.sqrt(sum((h - mean) ** 2 for h in hand) / (len(hand) - 1)) / math.sqrt(len(hand))
    assert out["kl_to_ref"] == pytest.approx(mean, rel=1e-4)
    assert out["kl_to_ref_se"] == pytest.approx(se, rel=1e-3)
    log_ratio = sum(_hand_logp(policy, p, r) - _hand_logp(ref, p, r) for p, r in seqs) / len(seqs)
    assert abs(log_ratio - mean) > 1e-3  # the old estimator gives a different number on these samples


def test_idealised_ranking_accuracy_hand_worked_case():
    """β = 0.5. Reference log-probs (chosen, rejected) and α, worked by hand with
    π_ref(y_w)/π_ref(y_l) > ((1 − α)/α)^(1/β):
      A: ratio e^-2 ≈ 0.135, α = 0.9: threshold (1/9)^2 ≈ 0.0123 → ranked correctly
      B: ratio e^-2 ≈ 0.135, α = 0.6: threshold (2/3)^2 ≈ 0.444  → wrong
      C: ratio e^+1,         α = 0.5: threshold 1                 → correct (the reference already is)
      D: ratio e^-30,        α = 1.0: threshold 0                 → correct (an unanimous pair)
    → 3/4. The reference itself ranks only C correctly (1/4)."""
    chosen = [-12.0, -12.0, -4.0, -40.0]
    rejected = [-10.0, -10.0, -5.0, -10.0]
    alpha = [0.9, 0.6, 0.5, 1.0]
    assert idealised_ranking_accuracy(chosen, rejected, alpha, 0.5) == 0.75
    # β large (weak pull to the data): the optimum stays near the reference; only C and D hold
    # (A: threshold (1/9)^(1/5) ≈ 0.644 > 0.135)
    assert idealised_ranking_accuracy(chosen, rejected, alpha, 5.0) == 0.5
    # one α for every pair
    assert idealised_ranking_accuracy(chosen[:3], rejected[:3], 0.9, 0.5) == 1.0


def test_probe_reports_idealised_accuracy_and_gap_from_reference_logps(models):
    """End to end: rows carry α (or take the default); the idealised figure uses the
    *reference's* log-probs (computed here by hand), the observed one the policy's, and the
    gap is their difference. On these pairs the three figures differ — reference 1/4,
    observed 2/4, idealised 3/4 — and the implicit-reward accuracy (1.0) is reported under its
    own name, not as the idealised figure (the old mislabel)."""
    policy, ref, tok = models
    rows = [{"prompt": "The capital of France is", "chosen": " Paris.", "rejected": " a city in Europe.",
             "alpha": 0.55},
            {"prompt": "List three colours:", "chosen": " red, green, blue", "rejected": " red", "alpha": 0.9},
            {"prompt": "Say hi:", "chosen": " hi there", "rejected": " hello", "alpha": 1.0},
            {"prompt": "Name a fruit:", "chosen": " apple", "rejected": " pear"}]  # no α: the default
    beta, default_alpha = 1.0, 0.75
    out = preference_probe(policy, lambda: contextlib.nullcontext(ref), tok, rows, max_pairs=8, kl_prompts=0,
                           ideal_beta=beta, ideal_alpha=default_alpha)
    ideal, observed, reference = [], [], []
    for row in rows:
        a = row.get("alpha", default_alpha)
        pc, c = encode(tok, row["prompt"], row["chosen"])
        pr, r = encode(tok, row["prompt"], row["rejected"])
        ref_margin = _hand_logp(ref, pc, c) - _hand_logp(ref, pr, r)
        ideal.append(math.exp(ref_margin) > ((1 - a) / a) ** (1 / beta))
        observed.append(_hand_logp(policy, pc, c) > _hand_logp(policy, pr, r))
        reference.append(ref_margin > 0)
    assert (sum(reference), sum(observed), sum(ideal)) == (1, 2, 3)  # the case discriminates
    assert out["idealised_ranking_accuracy"] == pytest.approx(0.75)
    assert out["ranking_accuracy"] == pytest.approx(0.5)
    assert out["ref_ranking_accuracy"] == pytest.approx(0.25)
    assert out["alignment_gap"] == pytest.approx(0.25, abs=1e-6)
    assert out["heldout_reward_accuracy"] == pytest.approx(1.0)
    # without β (a method whose optimum is not DPO's) there is no idealised figure
    plain = preference_probe(policy, lambda: contextlib.nullcontext(ref), tok, rows, max_pairs=8, kl_prompts=0)
    assert "idealised_ranking_accuracy" not in plain and "alignment_gap" not in plain


def test_reference_logps_are_cached_while_the_reference_is_frozen(models):
    """Second evaluation: the reference's pair log-probs come from the cache (the reference is
    not run at all) and every probe value equals a fresh computation."""
    policy, ref, tok = models
    rows = [{"prompt": p, "chosen": " yes, indeed", "rejected": " no"} for p in PROMPTS]
    cache = {}
    first = preference_probe(policy, lambda: contextlib.nullcontext(ref), tok, rows, max_pairs=8, kl_prompts=0,
                             ideal_beta=0.5, ideal_alpha=0.75, ref_cache=cache)
    assert len(cache) == 1

    @contextlib.contextmanager
    def must_not_run():
        raise AssertionError("the reference ran although its log-probs were cached")
        yield

    cached = preference_probe(policy, must_not_run, tok, rows, max_pairs=8, kl_prompts=0,
                              ideal_beta=0.5, ideal_alpha=0.75, ref_cache=cache)
    fresh = preference_probe(policy, lambda: contextlib.nullcontext(ref), tok, rows, max_pairs=8, kl_prompts=0,
                             ideal_beta=0.5, ideal_alpha=0.75)
    assert cached == fresh == first
    (rlp,) = cache.values()
    hand = []
    for row in rows:
        for resp in (row["chosen"], row["rejected"]):
            hand.append(_hand_logp(ref, *encode(tok, row["prompt"], resp)))
    assert torch.allclose(rlp.double(), torch.tensor(hand, dtype=torch.float64), atol=1e-4)


def test_batched_samples_match_one_at_a_time(models):
    """Sampling several prompts per generate call (left padding) draws from the same π: on
    the real model with its logits scaled ×1000 (sampling ≈ its greedy choice, which depends on
    every position and mask being right) both paths give the same responses."""
    policy, _, tok = models
    forced = copy.deepcopy(policy)
    forced.lm_head.register_forward_hook(lambda m, i, o: o * 1000.0)
    together = sample_responses(forced, tok, PROMPTS, max_new_tokens=3, seed=0, batch_size=4)
    alone = [sample_responses(forced, tok, [p], max_new_tokens=3, seed=0, batch_size=1)[0] for p in PROMPTS]
    assert together == alone
    assert len({len(p) for p, _ in together}) > 1  # the prompts really needed padding


def _first_diff(a, b):
    return next(i for i in range(min(len(a), len(b)) + 1) if i == min(len(a), len(b)) or a[i] != b[i])


def _ctx(tok, rows, max_length):
    return types.SimpleNamespace(config=types.SimpleNamespace(max_length=max_length, method="dpo"),
                                 tokenizer=tok, train_dataset=rows)


def test_truncation_trap_counts_pairs_and_suggests_a_length(models):
    _, _, tok = models
    late = {"prompt": "Q: name a fruit.\nA:", "chosen": " I would say that the answer is apple",
            "rejected": " I would say that the answer is pear"}
    early = {"prompt": "Q: name a fruit.\nA:", "chosen": " apple", "rejected": " pear"}
    eos = tok.eos_token or ""
    # independent: tokenise prompt+chosen and prompt+rejected, find the first differing token
    d_late = _first_diff(tok(late["prompt"] + late["chosen"] + eos)["input_ids"],
                         tok(late["prompt"] + late["rejected"] + eos)["input_ids"])
    d_early = _first_diff(tok(early["prompt"] + early["chosen"] + eos)["input_ids"],
                          tok(early["prompt"] + early["rejected"] + eos)["input_ids"])
    assert d_early < d_late
    rows = [late, early, late]
    assert truncation_ties(tok, rows, d_late) == (2, 3, d_late + 1)       # cut exactly before the difference
    assert truncation_ties(tok, rows, d_late + 1) == (0, 3, d_late + 1)   # the suggestion fixes every pair
    with pytest.warns(TruncationWarning) as w:
        assert check_truncation(_ctx(tok, rows, d_late)) == 2
    text = str(w[0].message)
    assert "2 of 3 training pairs" in text and f"max_length={d_late + 1}" in text and "\n" not in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say when no pair is cut
        assert check_truncation(_ctx(tok, rows, d_late + 1)) == 0
    # every pair cut: refuse, in one line
    with pytest.raises(WorkbenchError) as e:
        check_truncation(_ctx(tok, rows, d_early))
    assert "all 3 of 3 training pairs" in str(e.value) and f"max_length={d_late + 1}" in str(e.value)
    assert "\n" not in str(e.value)


def test_dpo_run_refuses_when_max_length_cuts_every_pair(tmp_path):
    """The first two built-in pairs differ only near the end (a reordered list: first
    difference at token 121 and 114 of prompt+response, prompts 73 and 77 tokens):
    max_length=100 keeps the prompts but cuts both pairs before they differ, so DPO would sit
    at log 2; the run refuses before training."""
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=1,
                      batch_size=2, max_rows=2, max_length=100, eval_rows=0, save_steps=1000, sample_prompts=0,
                      run_dir=str(tmp_path / "run"), method_args={"probe_pairs": 0, "probe_kl_prompts": 0})
    with pytest.raises(WorkbenchError) as e:
        train(cfg)
    assert not (tmp_path / "run").exists()  # refused before the run directory exists
    assert "all 2 of 2 training pairs are identical within max_length=100" in str(e.value)
    assert "max_length=122 keeps every pair's first difference" in str(e.value)


def test_preference_panel_shows_observed_vs_idealised_and_kl_error_bars():
    """The panel (static figure and live widget) draws observed and idealised ranking accuracy
    side by side, the gap, and the KL with its standard error as error bars."""
    from widgets.live_curves import LiveCurves
    from workbench.reports import PREFERENCE_KEYS, preference_figure
    from workbench.runs.records import MetricsRecord

    recs = [MetricsRecord(0, "eval", {"eval_ranking_accuracy": 0.5, "eval_idealised_ranking_accuracy": 0.9,
                                      "eval_alignment_gap": 0.4, "eval_kl_to_ref": 0.0, "eval_kl_to_ref_se": 0.0}),
            MetricsRecord(4, "eval", {"eval_ranking_accuracy": 0.55, "eval_idealised_ranking_accuracy": 0.9,
                                      "eval_alignment_gap": 0.35, "eval_kl_to_ref": 0.2, "eval_kl_to_ref_se": 0.05})]
    by_name = {t.name: t for t in preference_figure(recs).data}
    assert list(by_name["eval_idealised_ranking_accuracy"].y) == [0.9, 0.9]
    assert list(by_name["eval_alignment_gap"].y) == [0.4, 0.35]
    assert list(by_name["eval_kl_to_ref"].error_y.array) == [0.0, 0.05]
    assert by_name["eval_ranking_accuracy"].xaxis == by_name["eval_idealised_ranking_accuracy"].xaxis  # same panel
    assert {"eval_idealised_ranking_accuracy", "eval_alignment_gap", "eval_kl_to_ref_se"} <= set(PREFERENCE_KEYS)
    live = LiveCurves(live=True, min_interval=0.0)
    for r in recs:
        live.add(r)
    live_by_name = {t.name: t for t in live.pref_fig.data}
    assert list(live_by_name["eval_kl_to_ref"].error_y.array) == [0.0, 0.05]
    assert list(live_by_name["eval_idealised_ranking_accuracy"].y) == [0.9, 0.9]
