"""The inverse-CDF token draw that sampled decoding uses on the CPU (workbench/models/sampling.py):
it draws from the same distribution as torch.multinomial, never a masked token, and is routed
to only while `fast_sampling()` is entered."""
import threading

import pytest
import torch

from workbench.models.sampling import fast_sampling, inverse_cdf_sample


def _probs():
    torch.manual_seed(0)
    logits = torch.randn(3, 40) * 2
    logits[0, 5:] = float("-inf")          # top-k-like mask: 5 tokens left
    logits[1, ::2] = float("-inf")         # every other token masked
    return torch.softmax(logits, -1)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "torch"])
def test_frequencies_match_the_probabilities_and_masked_tokens_never_come(sampler):
    probs, draws = _probs(), 20_000
    many = probs.repeat_interleave(draws, 0)
    g = torch.Generator().manual_seed(1)
    idx = inverse_cdf_sample(many, g) if sampler == "inverse_cdf" else torch.multinomial(many, 1, generator=g)
    assert idx.shape == (3 * draws, 1) and idx.dtype == torch.int64
    freq = torch.nn.functional.one_hot(idx.view(3, draws), 40).double().mean(1)
    sd = (probs.double() * (1 - probs.double()) / draws).sqrt()
    assert ((freq - probs.double()).abs() <= 6 * sd + 1e-12).all()
    assert (freq[probs == 0] == 0).all()
    # unnormalised rows draw by their proportions too (generate passes softmax output; be general)
    g = torch.Generator().manual_seed(2)
    assert inverse_cdf_sample(torch.tensor([[0.0, 3.0, 0.0]]).repeat(100, 1), g).eq(1).all()


def test_routed_only_inside_the_context_and_only_for_one_draw_per_row():
    original = torch.multinomial
    probs = _probs()
    with fast_sampling():
        with fast_sampling():  # nested (a mirror's context inside an evaluation's)
            assert torch.multinomial is not original
        assert torch.multinomial is not original  # the outer use still holds it
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.equal(torch.multinomial(probs, num_samples=1, generator=g1), inverse_cdf_sample(probs, g2))
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(torch.multinomial(probs, 2, generator=g1), original(probs, 2, generator=g2))  # torch's
        with pytest.raises(RuntimeError, match="probability tensor contains"):
            torch.multinomial(torch.tensor([[0.5, float("nan")]]), 1)  # torch's own error for a broken row
        with pytest.raises(RuntimeError, match="probability tensor contains"):
            torch.multinomial(torch.tensor([[0.5, -0.1, 0.5]]), 1)  # a negative entry, though the sum is positive
    assert torch.multinomial is original


def test_concurrent_users_restore_torch_when_the_last_leaves():
    original, inside, release = torch.multinomial, threading.Event(), threading.Event()

    def other():
        with fast_sampling():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with fast_sampling():
        pass
    assert torch.multinomial is not original  # the other thread is still sampling
    release.set()
    t.join(10)
    assert torch.multinomial is original
