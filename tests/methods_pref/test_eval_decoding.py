"""The evaluation's decoding copy (workbench.models.decoding.eval_decoder): one per evaluation, shared
by the probes' samples and the run samples, decoding what the policy decodes, from its own
weights even when a TRL trainer has patched the policy's forward."""
import math

import pytest
import torch

from workbench.models.decoding import eval_decoder, release_eval_decoder


@pytest.fixture
def dpo_trainer(build_job):
    trainer = build_job(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=1,
                        max_rows=4, eval_rows=2, sample_prompts=0)
    torch.manual_seed(0)
    with torch.no_grad():  # a policy that differs from its base, as after training
        for name, p in trainer.model.named_parameters():
            if ".lora_B." in name:
                p.add_(torch.randn_like(p) * 0.05)
    yield trainer
    release_eval_decoder()


def _greedy(model, tok, context=torch.no_grad):
    ids = torch.tensor([tok("The capital of France is")["input_ids"]] * 2)
    with torch.no_grad(), context():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                             do_sample=False, pad_token_id=tok.pad_token_id, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.logits, 1)


def test_fp32_copy_is_the_merged_policy_and_runs_its_own_weights(dpo_trainer):
    policy, tok = dpo_trainer.model.eval(), dpo_trainer.processing_class
    assert "forward" in vars(policy.get_base_model())  # TRL patched the forward on the instance
    decoder, context = eval_decoder(policy, step=3, bf16=False)
    assert decoder is not policy and not any("lora" in n for n, _ in decoder.named_modules())
    want_ids, want_logits = _greedy(policy, tok)
    got_ids, got_logits = _greedy(decoder, tok, context)
    assert torch.equal(got_ids, want_ids)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-4)  # merging: float rounding only
    with torch.no_grad():  # the original moves on (training); the copy keeps what it was given
        for name, p in policy.named_parameters():
            if ".lora_B." in name:
                p.add_(1.0)
    assert not torch.equal(_greedy(policy, tok)[1], want_logits)
    assert torch.equal(_greedy(decoder, tok, context)[1], got_logits)


def test_bf16_copy_decodes_under_autocast_with_bf16_linears(dpo_trainer):
    policy, tok = dpo_trainer.model.eval(), dpo_trainer.processing_class
    decoder, context = eval_decoder(policy, step=0, bf16=True)
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert decoder.get_input_embeddings().weight.dtype == torch.float32  # untied: embeddings stay fp32
    with context():
        assert torch.is_autocast_enabled("cpu")
    ids, logits = _greedy(decoder, tok, context)
    want_ids, want_logits = _greedy(policy, tok, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert ids.shape == want_ids.shape
    # bf16 linears either way; what differs is merged vs unmerged rounding (measured 0.007 on logits ~1)
    assert (logits - want_logits).abs().max() < 0.05 * want_logits.abs().max()


def test_one_copy_per_evaluation(dpo_trainer, build_job):
    policy = dpo_trainer.model
    first, _ = eval_decoder(policy, step=5, bf16=False)
    assert eval_decoder(policy, step=5, bf16=False)[0] is first  # the probes' copy serves the run samples
    assert eval_decoder(policy, step=6, bf16=False)[0] is not first  # a later step: the weights moved
    other = build_job(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=1,
                      max_rows=4, eval_rows=2, sample_prompts=0).model
    assert eval_decoder(other, step=6, bf16=False)[0] is not eval_decoder(policy, step=6, bf16=False)[0]
    plain = other.get_base_model()  # no PEFT wrapper: nothing to merge; fp32: nothing to cast
    assert eval_decoder(plain, step=7, bf16=False)[0] is plain  # not copied just to pack it


def test_probes_ask_for_the_copy_only_when_they_sample(tiny):
    from workbench.methods.preference_metrics import preference_probe

    model, tok = tiny
    rows = [{"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"}]
    asked = []
    decoder = lambda: asked.append(1) or (model, torch.no_grad)  # noqa: E731
    preference_probe(model, None, tok, rows, kl_prompts=0, decoder=decoder)
    assert not asked  # nothing to sample: no copy made
    out = preference_probe(model, None, tok, rows, kl_prompts=1, max_new_tokens=2, decoder=decoder)
    assert asked == [1] and "sample_length" in out


RUN_PROMPTS = [[{"role": "user", "content": "Name three colours of the rainbow, please, in order."}], "Hi"]


def test_run_samples_ride_in_the_probes_generate_call(tiny, monkeypatch):
    """The probes decode the run's greedy samples in their own sampling `generate` call: those
    rows come out exactly as the Sampler's own greedy batch gives them, the sampled rows stay
    within their token budget and seeded, and the Sampler then serves that step without
    decoding again (one generate call per evaluation, not two)."""
    from workbench.methods.preference_metrics import preference_probe, sample_responses
    from workbench.training.samples import Sampler

    model, tok = tiny
    want = Sampler(tok, RUN_PROMPTS, 10)(model, step=3)  # the greedy batch on its own
    run_samples = Sampler(tok, RUN_PROMPTS, 10)
    rows = [{"prompt": p, "chosen": " yes", "rejected": " no"} for p in ("The sky is", "Two and two make", "Q:")]
    calls = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda *a, **k: calls.append(1) or generate(*a, **k))
    out = preference_probe(model, None, tok, rows, max_pairs=0, kl_prompts=3, max_new_tokens=4, seed=5,
                           run_samples=run_samples, step=3)
    assert len(calls) == 1 and out["sample_length"] <= 4
    assert run_samples(model, step=3) == want and len(calls) == 1  # served from the probes' call
    assert run_samples(model, step=3) == want and len(calls) == 2  # once: a second call decodes itself
    run_samples.keep(3, [[1, 2]] * 2)
    assert run_samples(model, step=4) == want  # a stale step is never served
    # the sampled rows: 4 tokens at most although the batch decoded 10, the same for the same seed
    prompts, greedy = [r["prompt"] for r in rows], (run_samples.prompt_ids(), 10)
    mixed = sample_responses(model, tok, prompts, 4, seed=5, greedy=greedy)
    assert all(len(r) <= 4 for _, r in mixed[:3]) and mixed == sample_responses(model, tok, prompts, 4, seed=5,
                                                                                  greedy=greedy)
    assert [tok.decode(r, skip_special_tokens=True) for _, r in mixed[3:]] == [s["completion"] for s in want]


def test_argmax_rows_force_the_argmax_and_leave_the_other_rows_alone():
    from workbench.methods.preference_metrics import _ArgmaxRows

    scores = torch.tensor([[0.1, 2.0, 2.0, -1.0], [0.1, 2.0, 2.0, -1.0]])
    out = _ArgmaxRows(torch.tensor([True, False]))(None, scores.clone())
    assert torch.equal(out[1], scores[1])
    assert out[0].tolist() == [-math.inf, 0.0, -math.inf, -math.inf]  # the first of tied maxima, as argmax
    probs = torch.softmax(out, -1)
    assert probs[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    torch.manual_seed(0)
    assert set(torch.multinomial(probs[:1].expand(200, 4), 1).flatten().tolist()) == {1}
