"""Shared trainer bases (TRL subclasses) that several methods build on. Each method's
own trainer class lives, at module level, in the method's module.

- `logit_sft.LogitSFTTrainer`: SFTTrainer whose loss sees the full next-token
  distribution (Anchored SFT, DFT with KL tracking, loss reweighting).
- `objective.PairObjectiveTrainer` / `objective.ListObjectiveTrainer`: DPOTrainer
  subclasses for pairwise / listwise objectives TRL lacks (ASFT, AFT, LiPO).

The pure loss functions these call live in `workbench.methods.losses`."""
