"""The one home of the workbench's pure loss functions: plain tensor functions with no
trainer state, so tests can check each against a hand computation.

- `losses.sft`: token-level SFT-variant losses on logits (NLL, DFT, KL to a reference,
  per-sample reweighting), used by the trainers in `methods.trainers.logit_sft`.
- `losses.aft`, `asft`, `bco`, `lipo`: the preference objectives TRL lacks. Each takes
  sequence log-probabilities (already summed or averaged over response tokens) and
  returns a scalar loss."""
from . import sft
from .aft import aft_loss
from .asft import asft_loss
from .bco import bco_loss
from .lipo import lambda_weights, lipo_lambda_loss

__all__ = ["aft_loss", "asft_loss", "bco_loss", "lambda_weights", "lipo_lambda_loss", "sft"]
