"""`merge(runs, method, …)`: check everything → load → combine → write one run-shaped
directory (config.json recording sources, method and knobs; final/; summary.json).

The directory is assembled in a temporary folder beside `out` and renamed into place at
the end, so a failure (or Ctrl-C) leaves nothing behind, and every check that can fail on
the user's input happens before any weights load."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import WorkbenchError
from .base import MergeSpec, check_density, check_new_folder, get_merge_method, staging_dir
from .sources import Source, check_sources, read_source


@dataclass
class MergePlan:
    """A validated merge: nothing loaded, nothing written."""
    sources: list[Source]
    spec: MergeSpec
    knobs: Any
    weights: list[float]
    base: str
    out: Path

    @property
    def kind(self) -> str:
        return self.sources[0].kind

    def config(self) -> dict:
        """config.json of the merged run: run-shaped (model, dataset, method, peft, …) plus
        `merge` with the sources, method, weights and knobs."""
        first = self.sources[0]
        knobs = dataclasses.asdict(self.knobs)
        combination = self.spec.lora_combination(self.knobs) if self.kind == "lora" else None
        return {
            "model": self.base, "dataset": first.config.get("dataset"), "method": f"merge:{self.spec.name}",
            "peft": "lora" if self.kind == "lora" else "full", "run_dir": str(self.out), "max_steps": 0,
            "method_args": knobs, "peft_args": first.config.get("peft_args", {}) if self.kind == "lora" else {},
            "merge": {"method": self.spec.name, "weights": self.weights, "knobs": knobs, "base": self.base,
                      "kind": self.kind, "peft_combination": combination,
                      "sources": [s.describe() for s in self.sources]},
            "resolved": {"versions": _versions()},
        }


@dataclass
class MergeResult:
    run_dir: Path
    status: str
    summary: dict
    config: dict


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def parse_weights(weights, n: int) -> list[float] | None:
    """A list of numbers (or 'w1,w2,…'), one per run, each finite."""
    if weights is None or weights == "":
        return None
    if isinstance(weights, str):
        parts = [p.strip() for p in weights.split(",")]
        try:
            weights = [float(p) for p in parts]
        except ValueError:
            raise WorkbenchError(f"--weights {','.join(parts)!r}: expected numbers separated by commas") from None
    weights = list(weights)
    if len(weights) != n:
        raise WorkbenchError(f"--weights has {len(weights)} value(s) for {n} runs; give one weight per run")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise WorkbenchError(f"--weights: {w!r} is not a finite number")
    if not any(weights):
        raise WorkbenchError("--weights are all 0: the merge would be the base model with nothing of the runs; "
                             "give at least one run a weight")
    return [float(w) for w in weights]


def plan_merge(runs: Iterable, method: str = "linear", *, weights=None, density: float | None = None,
               base: str | None = None, out=None, **knobs) -> MergePlan:
    """Every check, in the order a user can fix them; nothing loaded or written."""
    from ..config import dataclass_from_args

    spec = get_merge_method(method)
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if len(runs) < 2:
        raise WorkbenchError(f"a merge needs at least two runs, got {len(runs)} (to merge a run with itself, "
                             "name it twice)")
    if density is not None:
        if "density" not in spec.knobs:
            with_density = ", ".join(s.name for s in _all_specs() if "density" in s.knobs)
            raise WorkbenchError(f"merge method {spec.name!r} has no density knob (methods with one: {with_density})")
        check_density(density)
        knobs["density"] = density
    knob_obj = dataclass_from_args(spec.config_cls, knobs, where=f"merge.{spec.name}")
    w = parse_weights(weights, len(runs))
    if spec.name == "greedy_soup" and w is not None:
        raise WorkbenchError("greedy_soup chooses its own (uniform) weights over the runs it keeps; drop --weights")
    sources = [read_source(r) for r in runs]
    base_name = check_sources(sources, base)
    kind = sources[0].kind
    if kind == "full" and spec.combine is None:
        raise WorkbenchError(f"merge method {spec.name!r} works on LoRA runs only; "
                             f"{sources[0].path} holds full weights")
    if kind == "lora" and getattr(knob_obj, "lora_mode", "delta") == "factors":
        ranks = [s.rank for s in sources]
        for s in sources[1:]:
            if s.rank != sources[0].rank:
                raise WorkbenchError(f"runs {sources[0].path} and {s.path} cannot be merged with lora_mode "
                                     f"'factors': ranks differ ({sources[0].rank} vs {s.rank}); use lora_mode "
                                     f"'delta' (ranks {ranks})")
    if kind == "full" and base_name != sources[0].base:
        _check_base_shape(base_name, sources[0])
    from ..models import resolve
    resolve(base_name)  # the base must be loadable (offline hub ids, typos) before anything is written
    from ..runs.store import runs_root
    out = Path(out).expanduser() if out else runs_root() / f"merge-{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_new_folder(out)
    return MergePlan(sources, spec, knob_obj, w or spec.default_weights(len(sources)), base_name, out)


def _all_specs():
    from .base import list_merge_methods
    return list_merge_methods()


def _check_base_shape(base: str, first: Source) -> None:
    import json

    from ..models import resolve
    from .sources import _SHAPE_KEYS

    path = Path(resolve(base)) / "config.json"
    if not path.is_file():
        return
    cb = json.loads(path.read_text())
    ca = json.loads((first.final / "config.json").read_text())
    for k in _SHAPE_KEYS:
        if ca.get(k) != cb.get(k):
            raise WorkbenchError(f"--base {base!r} and run {first.path} have different architectures "
                                 f"({k} {cb.get(k)!r} vs {ca.get(k)!r})")


def merge(runs, method: str = "linear", *, weights=None, density: float | None = None, base: str | None = None,
          out=None, device: str | None = None, listeners: Iterable = (), **knobs) -> MergeResult:
    """Merge finished runs into a new run directory and return where it is.

        workbench.merge(["runs/a", "runs/b"], "ties", density=0.3, out="runs/a+b-ties")

    `method`: linear, greedy_soup, task_arithmetic, ties, dare, magnitude_prune (any runs),
    svd, cat (LoRA runs only); `knobs`: the method's other knobs (its config dataclass)."""
    plan = plan_merge(runs, method, weights=weights, density=density, base=base, out=out, **knobs)
    return execute(plan, device=device, listeners=listeners)


def execute(plan: MergePlan, device: str | None = None, listeners: Iterable = ()) -> MergeResult:
    import torch

    from ..runs.records import Kind, MetricsRecord
    from ..runs.run import Run

    started = time.time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(getattr(plan.knobs, "seed", 0)))
        if plan.kind == "lora":
            save, info = _merge_lora(plan, device)
        else:
            save, info = _merge_full(plan, device)
    config = plan.config()
    config["merge"].update({k: v for k, v in info.items() if k != "log"})
    out = plan.out
    tmp = staging_dir(out)
    try:
        with Run.create(tmp, config, listeners) as run:
            for step, row in enumerate(info.get("log", []), 1):
                run.emit(MetricsRecord(step, Kind.EVAL, {"heldout_loss": row["soup"], "candidate_loss": row["alone"],
                                                         "kept": int(row["kept"])}))
            run.save_final(save)
            result = run.finish(steps=0, runtime_s=time.time() - started,
                                extra={"merge_method": plan.spec.name, "sources": [s.name for s in plan.sources],
                                       "weights_used": config["merge"]["weights"]})
        if out.exists():
            out.rmdir()  # checked empty in plan_merge
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MergeResult(out, result.status, result.summary, config)


def _tokenizer(plan: MergePlan):
    from ..models import load_tokenizer

    first = plan.sources[0]
    src = first.final if (first.final / "tokenizer_config.json").is_file() else plan.base
    return load_tokenizer(str(src))


def _save_tokenizer(plan: MergePlan, d: str, tok=None) -> None:
    """The first source's tokenizer files (all sources share one vocabulary), or the base's."""
    from .sources import tokenizer_files

    files = tokenizer_files(plan.sources[0])
    if any(f.name == "tokenizer_config.json" for f in files):
        for f in files:
            if f.name != "generation_config.json" or plan.kind == "full":
                shutil.copy2(f, Path(d) / f.name)
        return
    if tok is None:
        tok = _tokenizer(plan)
    tok.save_pretrained(d)


def _heldout(plan: MergePlan, tok=None):
    """(score(model) -> mean held-out loss over the datasets) for greedy soup."""
    from .heldout import heldout_loss, heldout_rows

    k = plan.knobs
    names = [k.heldout] if k.heldout else list(dict.fromkeys(str(s.config.get("dataset")) for s in plan.sources))
    sets = [heldout_rows(n, k.eval_rows) for n in names]
    tok = tok if tok is not None else _tokenizer(plan)

    def score(model) -> float:
        import torch
        with torch.no_grad():
            return sum(heldout_loss(model, tok, rows, max_length=k.max_length, batch_size=k.batch_size)
                       for rows in sets) / len(sets)
    return score, names


def _merge_lora(plan: MergePlan, device):
    from ..models import resolve
    from .full import load_full
    from .lora import add_merged, keep_only, load_adapters

    base_model, tok = load_full(resolve(plan.base), device), None
    model, names = load_adapters(base_model, [str(s.final) for s in plan.sources])
    ranks = [s.rank for s in plan.sources]
    k = plan.knobs
    info: dict = {}
    weights, chosen = plan.weights, list(range(len(names)))
    if plan.spec.name == "greedy_soup":
        from .soup import greedy_select

        tok = _tokenizer(plan)
        score, datasets = _heldout(plan, tok)
        alone = []
        for n in names:
            model.set_adapter(n)
            alone.append(score(model))

        def soup_score(idx):
            tmp = add_merged(model, [names[i] for i in idx], [1 / len(idx)] * len(idx), "cat", name="soup_trial")
            try:
                return score(model)
            finally:
                model.set_adapter(names[0])
                model.delete_adapter(tmp)
        chosen, log = greedy_select(alone, soup_score)
        weights = [1 / len(chosen)] * len(chosen)
        info = {"kept": [plan.sources[i].name for i in chosen], "heldout": datasets, "log": log,
                "weights": [weights[chosen.index(i)] if i in chosen else 0.0 for i in range(len(names))]}
    combination = plan.spec.lora_combination(k)
    w = [x * getattr(k, "scale", 1.0) for x in weights]
    add_merged(model, [names[i] for i in chosen], w, combination,
               density=getattr(k, "density", None), svd_rank=getattr(k, "svd_rank", None),
               svd_clamp=getattr(k, "svd_clamp", None),
               majority_sign_method=getattr(k, "majority_sign_method", "total"), ranks=[ranks[i] for i in chosen])
    keep_only(model)

    def save(d: str) -> None:
        model.save_pretrained(d)
        _save_tokenizer(plan, d, tok)
    return save, info


def _merge_full(plan: MergePlan, device):
    from ..models import resolve
    from .full import load_full, merge_state_dicts

    models = [load_full(str(s.final), device) for s in plan.sources]
    states = [m.state_dict() for m in models]
    base = load_full(resolve(plan.base), device).state_dict() if plan.spec.on_deltas else None
    k = plan.knobs

    def combine(tensors, weights):
        return plan.spec.combine(k, tensors, weights)
    work = models[0]
    info: dict = {}
    chosen, weights = list(range(len(states))), plan.weights
    if plan.spec.name == "greedy_soup":
        from .soup import greedy_select

        score, datasets = _heldout(plan)
        originals = {n: t.clone() for n, t in states[0].items()}
        alone = [score(m) for m in models]
        del models[1:]

        def soup_score(idx):
            work.load_state_dict(merge_state_dicts([states[i] if i else originals for i in idx],
                                                   [1 / len(idx)] * len(idx), combine))
            return score(work)
        chosen, log = greedy_select(alone, soup_score)
        states[0] = originals
        weights = [1 / len(chosen)] * len(chosen)
        info = {"kept": [plan.sources[i].name for i in chosen], "heldout": datasets, "log": log,
                "weights": [weights[chosen.index(i)] if i in chosen else 0.0 for i in range(len(states))]}
    merged = merge_state_dicts([states[i] for i in chosen], weights, combine, base=base)
    work.load_state_dict(merged)

    def save(d: str) -> None:
        work.save_pretrained(d)
        _save_tokenizer(plan, d)
    return save, info
