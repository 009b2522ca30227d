"""Import every method module so each registers itself. Add new methods here, in the
order listings show them (CLI `--list-methods`, the widgets' menus)."""
import importlib

METHOD_MODULES = (
    "sft", "dpo", "cpt",                                                                 # TRL's own
    "dft", "anchored_sft", "masked_thought", "hft", "loss_reweighting", "s3ft",          # SFT variants
    "kto", "bco", "orpo", "cpo", "asft", "aft", "lipo",                                  # preference objectives
    "onpolicy", "grpo",                                                                  # on-policy rounds, GRPO/RLOO
)

for _module in METHOD_MODULES:
    importlib.import_module(f"{__package__}.{_module}")
