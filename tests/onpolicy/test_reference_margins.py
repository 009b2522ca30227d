"""Each on-policy round's reference is the policy the round starts from, scored by the
same forward under the same precision: so the first DPO margin of every round is ~0.
(The merged-LoRA reference copy this replaces ran outside TRL's autocast and rounded
differently: round 2 started at a margin of +0.079.)"""
import json
from pathlib import Path

import pytest

from workbench import TrainConfig, train

REWARD = "def chars(prompts, completions, **kw):\n    return [len(c) / 100 for c in completions]\n"


@pytest.mark.parametrize("peft", ["lora", "full"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_first_margin_of_every_round_is_zero(tmp_path, precision, peft):
    fn = tmp_path / "chars.py"
    fn.write_text(REWARD)
    cfg = TrainConfig(model="tiny-llama", dataset="arithmetic", method="onpolicy-dpo", peft=peft, precision=precision,
                      max_steps=4, batch_size=2, max_length=96, eval_rows=0, sample_prompts=0, learning_rate=5e-3,
                      run_dir=str(tmp_path / "run"),
                      method_args={"rounds": 2, "k": 3, "prompts_per_round": 3, "max_new_tokens": 8,
                                   "progress": False, "rewards": {"python": {"function": f"{fn}:chars"}}})
    result = train(cfg)
    assert result.status == "completed"
    recs = [json.loads(line) for line in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if r["kind"] == "train"]
    assert [r["round"] for r in train_recs] == [1, 1, 2, 2]
    firsts = {r["round"]: r for r in reversed(train_recs)}  # the first record of each round
    for rnd, rec in sorted(firsts.items()):
        assert abs(rec["rewards/margins"]) < 1e-4, (rnd, rec["rewards/margins"])
    # ...and within every round the policy moves away from that reference: a reference that is secretly the
    # policy itself (e.g. a copy whose forward still runs the original) would keep every margin at 0.
    for rnd in (1, 2):
        later = [r["rewards/margins"] for r in train_recs if r["round"] == rnd and r is not firsts[rnd]]
        assert any(abs(m) > 1e-4 for m in later), (rnd, later)
