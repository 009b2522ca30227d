"""Training: the engine (validate → open run → build → attach → train → finish), the
context methods build their trainers from, and the Coordinator interface for methods that
drive several trainers (the on-policy loop)."""
