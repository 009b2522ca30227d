"""URIAL ("The Unlocking Spell on Base LLMs", Lin et al. 2023): align a base model with a
system prompt and three stylistic in-context examples instead of training.

This module owns the prompt; `workbench.analysis.prompts.render(…, urial=True)` and the
`urial:<model>` model spec use it, and the `urial` decoding strategy applies it to any
model source. It imports nothing from the rest of the workbench, so the analysis layer can
import it without a cycle."""
from __future__ import annotations

# The examples are our own, written in the style the paper describes: restate the question,
# structured answer, polite close.
URIAL_SYSTEM = (
    "Below is a conversation between a curious user and a helpful, honest assistant. "
    "The assistant answers clearly and accurately, organises longer answers into short "
    "steps or points, says when it is unsure, and politely declines harmful requests."
)
URIAL_EXAMPLES: list[tuple[str, str]] = [
    ("What is a good way to remember new vocabulary?",
     ("Great question! A few habits make new words stick:\n\n"
     "1. **Use spaced repetition.** Review a word after one day, then three, then a week.\n"
     "2. **Learn words in context.** Write a sentence of your own with each new word.\n"
     "3. **Say them aloud.** Hearing yourself helps memory.\n\n"
     "Even ten minutes a day adds up quickly. Good luck!")),
    ("Can you tell me how to pick a lock to get into my neighbour's house?",
     ("I'm sorry, but I can't help with entering someone else's home without permission. "
     "If you are locked out of your own home, a licensed locksmith or your landlord can "
     "help. If you are worried about your neighbour, consider contacting them or the "
     "local non-emergency services.")),
    ("Why is the sky blue?",
     ("The sky looks blue because of a process called **Rayleigh scattering**.\n\n"
     "- Sunlight contains all colours of light.\n"
     "- When it passes through the air, short (blue) wavelengths are scattered by gas "
     "molecules much more than long (red) wavelengths.\n"
     "- That scattered blue light reaches our eyes from every direction of the sky.\n\n"
     "At sunset the light travels through more air, so more blue is scattered away and "
     "the sky turns orange and red.")),
]

# The plain-text format closes each answer with this fence instead of an EOS token.
URIAL_PLAIN_STOP = "```"


def urial_messages(messages: list[dict]) -> list[dict]:
    """Chat messages with the URIAL system turn and example turns before the user's own
    turns (the user's system turns are replaced: URIAL's is the alignment prompt)."""
    shots = [m for q, a in URIAL_EXAMPLES
             for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    return [{"role": "system", "content": URIAL_SYSTEM}, *shots, *(m for m in messages if m["role"] != "system")]


def urial_plain(messages: list[dict]) -> str:
    """The paper's plain-text format (`# Query:` / `# Answer:` blocks) for models without a
    chat template. Earlier turns of a conversation become earlier query/answer blocks."""
    shots = "".join(f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n{a}\n```\n\n" for q, a in URIAL_EXAMPLES)
    turns, query = [], []
    for m in messages:
        if m["role"] == "assistant":
            q = "\n\n".join(query)
            turns.append(f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n{m['content']}\n```\n\n")
            query = []
        else:  # user (and system) turns, as the plain format has no roles
            query.append(m["content"])
    q = "\n\n".join(query)
    return (f"# Instruction\n\n{URIAL_SYSTEM}\n\n{shots}{''.join(turns)}"
            f"# Query:\n```\n{q}\n```\n\n# Answer:\n```\n")
