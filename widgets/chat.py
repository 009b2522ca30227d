"""Chat tab: 1–4 contestants (any model source × any decoding strategy) answer the same
message side by side, streaming (TextIteratorStreamer in a thread per contestant, so the
kernel stays responsive). Multi-turn with each model's chat template; each finished reply's
tokens are coloured by token-shift category against a chosen base, with its length, mean
KL to the base and, where a reward is chosen, its reward. Clear, copy, save (atomically)
into a run directory.

    from widgets.chat import ChatPanel
    chat = ChatPanel([("smollm2-135m-instruct", "plain"), ("urial:smollm2-135m-instruct", "plain")],
                     base="smollm2-135m-instruct")
    chat.widget            # or chat.send_sync("Hi") without a front end
"""
from __future__ import annotations

import html
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Callable

import ipywidgets as W

from workbench.errors import WorkbenchError

from .config_form import ConfigForm

MAX_CONTESTANTS = 4


def _style() -> str:
    from workbench.analysis.plots import CATEGORY_COLOURS as C

    return (
        "<style>.wb-chat-reply{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.6;"
        "border:1px solid #ddd;border-radius:4px;padding:6px;min-height:3em;}"
        ".wb-chat-col{min-width:0;flex:1 1 0;}"
        f".tds-tok{{border-radius:3px;}}.tds-marginal{{background:{C['marginal']}55;}}"
        f".tds-shifted{{background:{C['shifted']}66;}}"
        ".wb-chat-turn{color:#444;margin:2px 0;white-space:pre-wrap;}</style>")


def model_options(runs_root=None) -> list[str]:
    """Built-in models, their urial: forms, and finished runs under the runs root."""
    from workbench.models import list_models

    names = [m.name for m in list_models()]
    opts = names + [f"urial:{n}" for n in names]
    try:
        from workbench.runs import list_runs

        opts += [str(r.path) for r in list_runs(runs_root) if (Path(r.path) / "final").is_dir()]
    except Exception:  # noqa: BLE001 — a listing problem must not break the tab
        pass
    return opts


class Contestant:
    """One contestant: a model source, a strategy, and the strategy's knob form."""

    def __init__(self, index: int, model: str, strategy: str = "plain", knobs: dict | None = None,
                 options: list[str] | None = None, on_remove: Callable | None = None):
        from workbench.decoding import list_strategies

        self.index = index
        self.model = W.Combobox(value=model, options=options or [], ensure_option=False,
                                description=f"#{index + 1} model", layout=W.Layout(width="380px"),
                                placeholder="built-in, org/name, run dir, urial:<model>")
        self.model.add_class("wb-chat-model")
        self.strategy = W.Dropdown(options=[s.name for s in list_strategies()], value=strategy,
                                   description="strategy", layout=W.Layout(width="260px"))
        self.strategy.add_class("wb-chat-strategy")
        self.remove = W.Button(description="", icon="times", tooltip="remove this contestant",
                               layout=W.Layout(width="36px"))
        if on_remove:
            self.remove.on_click(lambda _: on_remove(self))
        self.form_box = W.VBox()
        self.form: ConfigForm | None = None
        self._build_form(knobs)
        self.strategy.observe(lambda _: self._build_form(), "value")
        self.knobs_acc = W.Accordion([self.form_box], titles=("knobs",), selected_index=None)
        self.widget = W.VBox([W.HBox([self.model, self.strategy, self.remove]), self.knobs_acc])
        self.widget.add_class("wb-chat-contestant")
        self._decoder = None
        self._key = None

    def _build_form(self, knobs: dict | None = None) -> None:
        from workbench.decoding import get_strategy

        spec = get_strategy(self.strategy.value)
        self.form = ConfigForm(spec.config_cls, knobs or {}, title=f"{spec.name}: {spec.summary}")
        self.form_box.children = [self.form.widget]

    def knobs(self) -> dict:
        return self.form.values() if self.form else {}

    def decoder(self, precision: str = "auto"):
        """The Decoder these settings describe (rebuilt only when they change)."""
        from workbench.decoding import Decoder

        model = self.model.value.strip()
        if not model:
            raise WorkbenchError(f"contestant #{self.index + 1}: name a model")
        knobs = self.knobs()
        key = (model, self.strategy.value, repr(sorted(knobs.items())), precision)
        if key != self._key:
            self._decoder = Decoder(model, self.strategy.value, knobs, precision=precision)
            self._key = key
        return self._decoder


class ReplyView:
    """One column: contestant name, the reply (streamed, then coloured), its numbers, copy."""

    def __init__(self, name: str):
        self.name = name
        self.text = ""
        self.header = W.HTML(f"<b>{html.escape(name)}</b>")
        self.body = W.HTML("<div class='wb-chat-reply'>…</div>")
        self.body.add_class("wb-chat-body")
        self.stats = W.HTML("")
        self.stats.add_class("wb-chat-stats")
        self.copy = W.HTML("")
        self.widget = W.VBox([self.header, self.body, self.stats, self.copy])
        self.widget.add_class("wb-chat-col")
        self._last = 0.0

    def stream(self, piece: str, force: bool = False) -> None:
        self.text += piece
        now = time.monotonic()
        if force or now - self._last > 0.08:   # throttle comm messages
            self._last = now
            self.body.value = f"<div class='wb-chat-reply wb-chat-streaming'>{html.escape(self.text)}▌</div>"

    def done(self, text: str, shift: dict | None, stats: str) -> None:
        self.text = text
        if shift and shift.get("tokens"):
            spans = "".join(
                f"<span class='tds-tok tds-{c}' title='{html.escape(f'{c}: base rank {r}, KL {k:.3f}')}'>"
                f"{html.escape(t)}</span>"
                for t, c, r, k in zip(shift["tokens"], shift["categories"], shift["ranks"], shift["kl"]))
            self.body.value = f"<div class='wb-chat-reply wb-chat-coloured'>{spans}</div>"
        else:
            self.body.value = f"<div class='wb-chat-reply wb-chat-done'>{html.escape(text)}</div>"
        self.stats.value = f"<small>{html.escape(stats)}</small>"
        self.copy.value = ("<button class='wb-chat-copy' data-text=\"" + html.escape(text, quote=True) +
                           "\" onclick=\"navigator.clipboard.writeText(this.dataset.text)\">copy reply</button>")

    def fail(self, message: str) -> None:
        self.body.value = f"<div class='wb-chat-reply' style='color:#b00'>{html.escape(message)}</div>"


class ChatPanel:
    def __init__(self, contestants=None, *, base: str = "", reward: str = "", runs_root=None,
                 get_run_dir: Callable[[], str | None] | None = None, precision: str = "auto",
                 live: bool = True):
        self.runs_root, self.get_run_dir, self.precision, self.live = runs_root, get_run_dir, precision, live
        self.options = model_options(runs_root)
        self.contestants: list[Contestant] = []
        self.box = W.VBox()
        for spec in (contestants or [("smollm2-135m-instruct", "plain")]):
            spec = (spec,) if isinstance(spec, str) else tuple(spec)
            self.add(*spec)
        self.add_button = W.Button(description="Add contestant", icon="plus")
        self.add_button.add_class("wb-chat-add")
        self.add_button.on_click(lambda _: self.add("smollm2-135m-instruct"))
        self.base = W.Combobox(value=base, options=self.options, ensure_option=False, description="base",
                               placeholder="model for token-shift colours (empty: none)",
                               layout=W.Layout(width="460px"))
        self.base.add_class("wb-chat-base")
        self.reward = W.Text(value=reward, description="reward", layout=W.Layout(width="460px"),
                             placeholder="reward spec: length, format, keywords… (YAML; empty: none)")
        self.message = W.Textarea(placeholder="Type a message and press Send", layout=W.Layout(width="760px"))
        self.message.add_class("wb-chat-input")
        self.send_button = W.Button(description="Send", icon="paper-plane", button_style="primary")
        self.send_button.add_class("wb-chat-send")
        self.clear_button = W.Button(description="Clear", icon="eraser")
        self.clear_button.add_class("wb-chat-clear")
        self.save_to = W.Text(description="save to", placeholder="run directory (default: the last run)",
                              layout=W.Layout(width="460px"))
        self.save_button = W.Button(description="Save", icon="save")
        self.save_button.add_class("wb-chat-save")
        self.status = W.HTML("")
        self.status.add_class("wb-chat-status")
        self.transcript = W.HTML("")
        self.replies = W.HBox(layout=W.Layout(width="100%"))
        self.replies.add_class("wb-chat-replies")
        self.send_button.on_click(lambda _: self.send())
        self.clear_button.on_click(lambda _: self.clear())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.widget = W.VBox([
            W.HTML(_style() + "<b>Contestants</b> (1–4: any model source × any decoding strategy)"),
            self.box, self.add_button, self.base, self.reward,
            self.transcript, self.replies, self.message,
            W.HBox([self.send_button, self.clear_button, self.status]),
            W.HBox([self.save_to, self.save_button]),
        ])
        self.widget.add_class("wb-chat")
        self.turns: list[dict] = []            # {"user": text, "replies": [{contestant, text, …}]}
        self.histories: list[list[dict]] = []  # per contestant: chat messages so far
        self._thread: threading.Thread | None = None
        self._reset_histories()

    # -- contestants -------------------------------------------------------------------
    def add(self, model: str, strategy: str = "plain", knobs: dict | None = None) -> Contestant:
        if len(self.contestants) >= MAX_CONTESTANTS:
            raise WorkbenchError(f"at most {MAX_CONTESTANTS} contestants")
        c = Contestant(len(self.contestants), model, strategy, knobs, self.options, on_remove=self._remove)
        self.contestants.append(c)
        self.box.children = [x.widget for x in self.contestants]
        if hasattr(self, "histories"):
            self.histories.append([])
        return c

    def _remove(self, c: Contestant) -> None:
        if len(self.contestants) <= 1 or self.running:
            return
        i = self.contestants.index(c)
        self.contestants.pop(i)
        self.histories.pop(i)
        for j, x in enumerate(self.contestants):
            x.index = j
            x.model.description = f"#{j + 1} model"
        self.box.children = [x.widget for x in self.contestants]

    def _reset_histories(self) -> None:
        self.histories = [[] for _ in self.contestants]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_status(self, text: str) -> None:
        self.status.value = html.escape(text)

    # -- actions -----------------------------------------------------------------------
    def send(self, text: str | None = None) -> None:
        """Send the typed message (or `text`); replies stream in a background thread."""
        if self.running:
            self._set_status("still answering the last message…")
            return
        text = self.message.value if text is None else text
        if not text.strip():
            self._set_status("type a message first")
            return
        self.message.value = ""
        self.send_button.disabled = True
        self._thread = threading.Thread(target=self._turn, args=(text.strip(),), name="workbench-chat", daemon=True)
        self._thread.start()

    def send_sync(self, text: str) -> dict:
        """Send and wait (scripts, headless notebooks, tests); returns the turn."""
        if self.running:
            raise WorkbenchError("still answering the last message")
        if not text.strip():
            raise WorkbenchError("empty message")
        self._turn(text.strip())
        if self.error:
            raise WorkbenchError(self.error)
        return self.turns[-1]

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    error: str | None = None

    def _turn(self, text: str) -> None:
        self.error = None
        views: list[ReplyView] = []
        try:
            self._set_status("loading models…")
            decoders = [c.decoder(self.precision) for c in self.contestants]
            base = self._base()
            rewards = self._rewards()
            views = [ReplyView(f"#{i + 1} {d.name}") for i, d in enumerate(decoders)]
            self.replies.children = [v.widget for v in views]
            self._set_status("answering…")
            msgs = [h + [{"role": "user", "content": text}] for h in self.histories]
            results: list[dict | None] = [None] * len(decoders)
            threads = [threading.Thread(target=self._reply, args=(d, m, v, base, rewards, results, i),
                                        name=f"workbench-chat-{i}", daemon=True)
                       for i, (d, m, v) in enumerate(zip(decoders, msgs, views))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            failed = [r["error"] for r in results if r and r.get("error")]
            for i, r in enumerate(results):
                msgs[i].append({"role": "assistant", "content": r.get("text", "") if r else ""})
            self.histories = msgs
            self.turns.append({"user": text, "replies": results})
            self._render_transcript()
            if failed:
                self.error = failed[0]
                self._set_status(f"error: {failed[0]}")
            else:
                self._set_status(f"turn {len(self.turns)} done")
        except Exception as e:  # noqa: BLE001 — shown in the tab; the kernel lives on
            self.error = str(e) if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
            self._set_status(f"error: {self.error}")
            if not isinstance(e, WorkbenchError):
                traceback.print_exc()
        finally:
            self.send_button.disabled = False

    def _base(self):
        from workbench.decoding import load_side

        name = self.base.value.strip()
        return load_side(name) if name else None

    def _rewards(self):
        from workbench.config import load_value

        raw = self.reward.value.strip()
        if not raw:
            return None
        from workbench.onpolicy.rewards import build_rewards

        return build_rewards(load_value(raw))

    def _reply(self, decoder, messages, view: ReplyView, base, rewards, results, i) -> None:
        out: dict = {"contestant": decoder.name, "model": decoder.side.name, "strategy": decoder.spec.name}
        try:
            for piece in decoder.stream(messages):
                view.stream(piece)
            view.stream("", force=True)
            gen = decoder.last
            out.update(text=gen.text, n_tokens=len(gen.token_ids))
            parts = [f"{len(gen.token_ids)} tokens"]
            shift = None
            if base is not None:
                try:
                    from workbench.decoding.shift import reply_shift

                    shift = reply_shift(decoder, base, messages, gen.token_ids)
                    out.update(mean_kl=shift["mean_kl"], shift=shift["fractions"])
                    parts.append(f"mean KL to base {shift['mean_kl']:.3f}")
                    parts.append("shifted {:.0%}".format(shift["fractions"]["shifted"]))
                except WorkbenchError as e:
                    parts.append(f"no token shift: {e}")
            if rewards:
                from workbench.onpolicy.rewards import score

                total, _ = score(rewards, [messages[-1]["content"]], [gen.text])
                out["reward"] = total[0]
                parts.append(f"reward {total[0]:.3f}")
            if "reward" in gen.info and "reward" not in out:
                out["reward"] = gen.info["reward"]
                parts.append(f"strategy reward {gen.info['reward']:.3f}")
            view.done(gen.text, shift, " · ".join(parts))
        except Exception as e:  # noqa: BLE001
            out["error"] = str(e) if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
            view.fail(out["error"])
            if not isinstance(e, WorkbenchError):
                traceback.print_exc()
        results[i] = out

    def _render_transcript(self) -> None:
        rows = []
        for t in self.turns[:-1]:   # the last turn is on screen in the columns
            rows.append(f"<div class='wb-chat-turn'><b>you:</b> {html.escape(t['user'])}</div>")
            for r in t["replies"]:
                if r:
                    rows.append(f"<div class='wb-chat-turn'><b>{html.escape(r['contestant'])}:</b> "
                                f"{html.escape(r.get('text', r.get('error', '')))}</div>")
        if self.turns:
            rows.append(f"<div class='wb-chat-turn'><b>you:</b> {html.escape(self.turns[-1]['user'])}</div>")
        self.transcript.value = "".join(rows)

    def clear(self) -> None:
        """Forget the conversation (every contestant starts afresh)."""
        if self.running:
            self._set_status("wait for the replies to finish")
            return
        self.turns = []
        self._reset_histories()
        self.replies.children = []
        self.transcript.value = ""
        self._set_status("conversation cleared")

    def copy(self, i: int) -> str:
        """The last reply of contestant i (0-based)."""
        if not self.turns:
            raise WorkbenchError("no replies yet")
        return (self.turns[-1]["replies"][i] or {}).get("text", "")

    def _save_clicked(self) -> None:
        try:
            path = self.save()
            self._set_status(f"saved {path}")
        except (WorkbenchError, OSError) as e:
            self._set_status(f"error: {e}")

    def save(self, run_dir: str | None = None) -> Path:
        """Write the conversation to <run_dir>/chats/chat-<time>.json (temp file + rename)."""
        from workbench.runs.store import write_json_atomic

        if not self.turns:
            raise WorkbenchError("nothing to save yet: send a message first")
        target = run_dir or self.save_to.value.strip() or (self.get_run_dir() if self.get_run_dir else None)
        if not target:
            raise WorkbenchError("no run directory: type one in 'save to' (or finish a run first)")
        root = Path(target).expanduser()
        if not root.is_dir():
            raise WorkbenchError(f"save to {root}: not an existing directory")
        path = root / "chats" / f"chat-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.json"
        path.parent.mkdir(exist_ok=True)
        write_json_atomic(path, {
            "contestants": [{"model": c.model.value, "strategy": c.strategy.value, "knobs": c.knobs()}
                            for c in self.contestants],
            "base": self.base.value.strip() or None, "reward": self.reward.value.strip() or None,
            "turns": self.turns})
        return path
