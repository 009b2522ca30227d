"""The Chat tab without a browser: two contestants, streaming into columns, token colours,
rewards, multi-turn, clear and an atomic save."""
import json

import pytest

from workbench.errors import WorkbenchError


def test_chat_panel_two_contestants_multi_turn(tmp_path):
    from widgets.chat import ChatPanel

    chat = ChatPanel([("tiny-llama", "plain", {"max_new_tokens": 4}),
                      ("urial:tiny-llama", "best_of_n", {"n": 2, "max_new_tokens": 4})],
                     base="tiny-llama", reward="length", precision="fp32")
    turn = chat.send_sync("Hello there")
    a, b = turn["replies"]
    assert a["mean_kl"] == pytest.approx(0.0, abs=1e-6) and a["shift"]["unshifted"] == 1.0  # itself vs base
    assert b["mean_kl"] > 0 and "reward" in b
    bodies = [col.children[1].value for col in chat.replies.children]
    assert "wb-chat-coloured" in bodies[1] and "tds-" in bodies[1]
    chat.send_sync("And then?")
    assert [len(h) for h in chat.histories] == [4, 4] and chat.copy(1) == chat.turns[-1]["replies"][1]["text"]
    path = chat.save(str(tmp_path))
    saved = json.loads(path.read_text())
    assert len(saved["turns"]) == 2 and saved["contestants"][1]["strategy"] == "best_of_n"
    chat.clear()
    assert chat.turns == [] and chat.histories == [[], []]
    with pytest.raises(WorkbenchError, match="nothing to save"):
        chat.save(str(tmp_path))
    with pytest.raises(WorkbenchError, match="empty message"):
        chat.send_sync("  ")
