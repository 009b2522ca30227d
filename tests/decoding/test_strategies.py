"""Each decoding strategy on tiny models, where the answer is known."""
import dataclasses

import pytest

from workbench.decoding import Decoder, StrategySpec, get_strategy, list_strategies, register, strategy_config
from workbench.errors import WorkbenchError

PROMPTS = ["Hello?", "Name a colour please."]


FP32 = {"precision": "fp32"}
NAMES = {"plain", "urial", "best_of_n", "reward_search", "weak_to_strong", "proxy_tuning", "instructive",
         "lookback", "contrastive"}


def ids(gens):
    return [g.token_ids for g in gens]


def test_registry_lists_every_strategy_with_a_card_and_refuses_duplicates():
    specs = {s.name: s for s in list_strategies()}
    assert NAMES <= set(specs)
    for s in specs.values():
        assert s.card.startswith(f"## `{s.name}`"), s.name   # its section of docs/decoding.md
    plain = get_strategy("plain")
    register(plain)   # the same spec again is fine
    with pytest.raises(WorkbenchError, match="already registered"):
        register(StrategySpec("plain", dataclasses.make_dataclass("X", [], bases=(plain.config_cls,)),
                              "x", plain.factory))


@pytest.mark.parametrize("name,knobs,match", [
    ("nope", {}, "unknown decoding strategy 'nope'"),
    ("plain", {"foo": 1}, "unknown strategy key 'foo'"),
    ("best_of_n", {"n": 0}, "strategy.n must be >= 1"),
    ("best_of_n", {"n": "four"}, "strategy.n: expected an integer"),
    ("best_of_n", {"reward": "nope"}, "unknown reward 'nope'"),
    ("proxy_tuning", {"expert": "tiny-llama"}, "strategy.anti_expert is required"),
    ("instructive", {"noise": "loud"}, "unknown strategy.noise 'loud'"),
    ("plain", {"temperature": 0}, "strategy.temperature must be > 0"),
])
def test_bad_knobs_fail_with_one_line(name, knobs, match):
    with pytest.raises(WorkbenchError, match=match) as e:
        strategy_config(name, knobs)
    assert "\n" not in str(e.value)


def test_plain_greedy_batch_equals_one_by_one_and_streams(tiny):
    d = Decoder(tiny, "plain", max_new_tokens=6, **FP32)
    both = d.generate(PROMPTS)
    assert ids(both) == ids(d.generate(PROMPTS[:1])) + ids(d.generate(PROMPTS[1:]))
    pieces = list(d.stream(PROMPTS[0]))
    assert "".join(pieces) == both[0].text and d.last.token_ids == both[0].token_ids


def test_sampling_depends_on_seed_only(tiny):
    a = Decoder(tiny, "plain", sample=True, seed=3, max_new_tokens=8, **FP32).generate(PROMPTS)
    b = Decoder(tiny, "plain", sample=True, seed=3, max_new_tokens=8, **FP32).generate(PROMPTS)
    c = Decoder(tiny, "plain", sample=True, seed=4, max_new_tokens=8, **FP32).generate(PROMPTS)
    assert ids(a) == ids(b) != ids(c)


def test_proxy_tuning_with_expert_equal_to_anti_expert_reproduces_the_target(tiny, forced):
    target = forced(tiny[1].encode(" the")[0], 3.0)      # any target: a different model from the pair
    for sample in (False, True):
        knobs = {"max_new_tokens": 8, "sample": sample, "seed": 1}
        plain = Decoder(target, "plain", knobs, **FP32).generate(PROMPTS)
        proxy = Decoder(target, "proxy_tuning", {**knobs, "expert": "tiny-llama", "anti_expert": "tiny-llama"},
                        aux={"expert": tiny, "anti_expert": tiny}, **FP32).generate(PROMPTS)
        assert ids(proxy) == ids(plain)


def test_proxy_tuning_moves_the_target_toward_the_expert(tiny, forced):
    tid = tiny[1].encode(" colour")[0]
    proxy = Decoder(tiny, "proxy_tuning", {"max_new_tokens": 4, "expert": "e", "anti_expert": "a"},
                    aux={"expert": forced(tid, 12.0), "anti_expert": tiny}, **FP32).generate(PROMPTS)
    assert all(g.token_ids == [tid] * 4 for g in proxy)


def test_mismatched_vocabularies_are_one_clear_error(tiny, other_vocab):
    for name, knobs in (("proxy_tuning", {"expert": "e", "anti_expert": "a"}),
                        ("contrastive", {"base": "b"})):
        aux = {k: other_vocab for k in ("expert", "anti_expert", "base")}
        with pytest.raises(WorkbenchError, match="different vocabularies") as e:
            Decoder(tiny, name, knobs, aux=aux)
        assert "\n" not in str(e.value)


def test_best_of_n_with_n_1_equals_sampling_and_reports_every_candidate(tiny):
    knobs = {"sample": True, "seed": 7, "max_new_tokens": 8}
    sampled = Decoder(tiny, "plain", knobs, **FP32).generate(PROMPTS)
    best1 = Decoder(tiny, "best_of_n", {**knobs, "n": 1}, **FP32).generate(PROMPTS)
    assert ids(best1) == ids(sampled)
    best4 = Decoder(tiny, "best_of_n", {**knobs, "n": 4, "reward": {"length": {"max_words": 2}}},
                    **FP32).generate(PROMPTS)
    for g in best4:
        rewards = [c["reward"] for c in g.info["candidates"]]
        assert len(rewards) == 4 and g.info["reward"] == max(rewards)
        assert g.text == g.info["candidates"][g.info["chosen"]]["text"]


def test_reward_search_reports_chunk_scores_and_final_reward(tiny):
    g = Decoder(tiny, "reward_search", {"n": 3, "chunk_tokens": 3, "max_new_tokens": 6,
                                        "reward": {"keywords": {"include": ["the"]}}}, **FP32).generate(PROMPTS[:1])[0]
    assert len(g.info["search"]) == 2 and all(len(s["scores"]) == 3 for s in g.info["search"])
    assert "reward" in g.info and len(g.token_ids) <= 6


def test_instructive_with_epsilon_0_equals_greedy(tiny, forced):
    model = forced(tiny[1].encode(" the")[0], 3.0)
    greedy = Decoder(model, "plain", max_new_tokens=8, **FP32).generate(PROMPTS)
    inst = Decoder(model, "instructive", epsilon=0.0, max_new_tokens=8, **FP32).generate(PROMPTS)
    assert ids(inst) == ids(greedy)


def test_lookback_rejects_a_forced_repetition(tiny, forced):
    tid = tiny[1].encode(" the")[0]
    model = forced(tid, 12.0)
    greedy = Decoder(model, "plain", max_new_tokens=12, **FP32).generate(PROMPTS[:1])[0]
    assert greedy.token_ids == [tid] * 12                     # the forced repetition
    lb = Decoder(model, "lookback", max_new_tokens=12, kl_threshold=0.1, **FP32).generate(PROMPTS[:1])[0]
    assert lb.info["lookback_rejected"] > 0
    assert lb.token_ids.count(tid) <= 3


def test_weak_to_strong_with_tuned_equal_to_untuned_equals_plain_sampling(tiny, forced):
    target = forced(tiny[1].encode(" the")[0], 3.0)
    knobs = {"sample": True, "seed": 5, "max_new_tokens": 10}
    plain = Decoder(target, "plain", knobs, **FP32).generate(PROMPTS)
    w2s = Decoder(target, "weak_to_strong", {**knobs, "tuned": "t", "untuned": "u", "n": 3, "chunk_tokens": 4},
                  aux={"tuned": tiny, "untuned": tiny}, **FP32).generate(PROMPTS)
    assert ids(w2s) == ids(plain)
    assert all(s == 0.0 for g in w2s for step in g.info["search"] for s in step["scores"])


def test_weak_to_strong_follows_the_small_tuned_model(tiny, forced):
    tid = tiny[1].encode(" colour")[0]
    w2s = Decoder(tiny, "weak_to_strong", {"sample": True, "max_new_tokens": 8, "tuned": "t", "untuned": "u",
                                           "n": 4, "chunk_tokens": 2},
                  aux={"tuned": forced(tid, 12.0), "untuned": tiny}, **FP32).generate(PROMPTS[:1])[0]
    plain = Decoder(tiny, "plain", {"sample": True, "max_new_tokens": 8}, **FP32).generate(PROMPTS[:1])[0]
    chosen = [s["chosen"] for s in w2s.info["search"]]
    assert w2s.token_ids.count(tid) >= plain.token_ids.count(tid)
    assert all(max(s["scores"]) == s["scores"][c] for s, c in zip(w2s.info["search"], chosen))


def test_contrastive_surfaces_the_boosted_token_and_equals_greedy_against_itself(tiny, forced):
    tid = tiny[1].encode(" colour")[0]
    g = Decoder(forced(tid, 3.0), "contrastive", {"base": "b", "max_new_tokens": 3}, aux={"base": tiny},
                **FP32).generate(PROMPTS)
    assert all(x.token_ids[0] == tid for x in g)
    same = Decoder(tiny, "contrastive", {"base": "b", "alpha": 1.0, "max_new_tokens": 4}, aux={"base": tiny},
                   **FP32).generate(PROMPTS)
    assert ids(same) == ids(Decoder(tiny, "plain", max_new_tokens=4, **FP32).generate(PROMPTS))


def test_urial_strategy_equals_the_urial_model_spec(tiny):
    a = Decoder("tiny-llama", "urial", max_new_tokens=5, **FP32).generate(PROMPTS)
    b = Decoder("urial:tiny-llama", "plain", max_new_tokens=5, **FP32).generate(PROMPTS)
    c = Decoder("tiny-llama", "plain", max_new_tokens=5, **FP32).generate(PROMPTS)
    assert ids(a) == ids(b)
    assert ids(a) != ids(c) or True   # the tiny model may ignore the prompt; the rendering differs:
    from workbench.analysis.prompts import render
    from workbench.decoding.urial import URIAL_SYSTEM
    assert URIAL_SYSTEM in render(tiny[1], [{"role": "user", "content": "x"}], urial=True)


def test_run_directory_is_a_model_source(tiny, tmp_path):
    import copy
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft = get_peft_model(copy.deepcopy(tiny[0]), LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                                              init_lora_weights=False))
    run = tmp_path / "run-lora"
    peft.save_pretrained(run / "final")
    (run / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft"}))
    g = Decoder(str(run), "best_of_n", {"n": 2, "max_new_tokens": 4}, **FP32).generate(PROMPTS[:1])
    assert len(g[0].info["candidates"]) == 2


def test_empty_prompt_is_refused(tiny):
    d = Decoder(tiny, "plain", max_new_tokens=2)
    with pytest.raises(WorkbenchError, match="empty prompt"):
        d.generate(["  "])
