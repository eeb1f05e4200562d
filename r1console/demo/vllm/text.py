"""Deterministic, plausible DeepSeek-R1-style text for the simulated server.

``ReplyText(prompt, seed, reasoning_tokens, answer_tokens)`` yields exactly that many reasoning tokens
("Okay, so the user is asking about ...", "Wait, ...", "Hmm, ...") and answer tokens (starting with
"\\n\\n", as R1's answers after ``</think>`` do), built from the prompt's own words. The same
arguments always give the same text. Tokens are strings that concatenate back to the text, one word
(with its leading space) or one punctuation mark each, like a BPE tokenizer's pieces.

``count_tokens(text)`` is the simulator's stand-in tokenizer for prompt lengths.
"""

from __future__ import annotations

import random
import re
from typing import Iterator

_PIECE = re.compile(r"\n+|[ \t]*[\w']+|[ \t]*[^\w\s']|[ \t]+")
_COUNT = re.compile(r"\w{1,7}|[^\w\s]")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")

THINK_END = "</think>"

_STOP = frozenset("""
about above after again against also because been before being below between both could does doing
down during each every from further have having here hers herself himself itself just more most much
must myself once only other ought ours ourselves over same should some such than that their theirs
them themselves then there these they this those through under until very what when where which while
whom with would your yours yourself yourselves please explain tell describe give show write make like
into onto within without will shall can't don't isn't aren't wasn't weren't what's it's i'm you're
answer question questions briefly short simple simply really thing things know want need
""".split())


def tokenize(text: str) -> list[str]:
    """Split ``text`` into token-like pieces; ``"".join(tokenize(t)) == t``."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    """Approximate token count: words of up to 7 characters count once, longer ones per 7 characters,
    every punctuation mark once."""
    return len(_COUNT.findall(text))


def keywords(text: str, limit: int = 6) -> list[str]:
    seen: list[str] = []
    for w in _WORD.findall(text):
        lw = w.lower().strip("'-")
        if lw in _STOP or lw in seen:
            continue
        seen.append(lw)
        if len(seen) >= limit:
            break
    return seen


_LEAD = re.compile(r"^(?:(?:what|how|why|who|when|where|which|is|are|was|were|does|do|did|can|could|"
                   r"would|should|explain|describe|tell me about|please|me|the|a|an)\b[\s,]*)+", re.I)


def _topic(text: str) -> str:
    first = re.split(r"(?<=[.?!])\s", text.strip(), maxsplit=1)[0]
    words = re.findall(r"[\w'-]+", _LEAD.sub("", first)) or re.findall(r"[\w'-]+", first)
    if not words:
        return "this question"
    topic = " ".join(words[:6])
    return topic if topic[:2].isupper() else topic[0].lower() + topic[1:]


_OPENERS = (
    "Okay, so the user is asking about {topic}.",
    "Okay, let's see. The question is about {topic}.",
    "Alright, the user wants to know about {topic}.",
    "Okay, I need to figure out {topic}.",
)
_REASONING = (
    " Let me think about this step by step.",
    " First, I should recall what {k1} actually means.",
    " Hmm, {k1} is related to {k2}, right?",
    " Wait, maybe I'm overcomplicating this.",
    " So, if {k1} affects {k2}, then the answer should mention that.",
    " I remember that {k1} is often discussed together with {k2}.",
    " Let me double-check that.",
    " Alternatively, the user might want a simple explanation rather than every detail.",
    " But wait, there's another point: {k2} could matter here too.",
    " Let me break it down: there's {k1}, there's {k2}, and how they interact.",
    " Hmm, is that right? I think so, but let me verify with an example.",
    " For example, consider a case where {k1} changes while {k2} stays the same.",
    " That would mean the effect comes mostly from {k1}.",
    " Wait, no. I should consider {k3} as well.",
    " Okay, so putting that together, {k1} and {k3} are the key parts.",
    " I should also mention a common misconception about {k2}.",
    " Let me make sure I'm not missing anything important.",
    " So the structure of the answer could be: definition, mechanism, then an example.",
    "\n\n",
)
_REASONING_CLOSERS = (
    " I think that covers it.",
    " Now I can write the answer.",
    " Let me put this together clearly.",
    " That should be enough for a clear answer.",
    " Okay.",
)
_ANSWER_OPEN = (
    "**{Topic}** comes down to a few key points:\n\n",
    "Here is a clear explanation of {topic}.\n\n",
    "Short answer: it depends mostly on {k1}.\n\n",
)
_ANSWER = (
    "1. **{K1}**: this is the central idea, and it determines most of the behaviour.\n",
    "2. **{K2}**: it interacts with {k1}, which is why the two are usually discussed together.\n",
    "3. **{K3}**: often overlooked, but it matters in edge cases.\n",
    "For example, when {k1} increases and {k2} stays fixed, the overall effect follows {k1}.\n",
    "A common misconception is that {k2} alone explains it; in practice {k1} plays the larger role.\n",
    "In practice, you can check this by comparing cases with and without {k3}.\n",
    "\n",
)
_ANSWER_CLOSERS = (
    "In short, {k1} is the key.",
    "I hope this helps!",
    "Let me know if you want more detail.",
    "In summary, focus on {k1} and {k2}.",
)


class ReplyText:
    """Exactly ``reasoning_tokens`` reasoning pieces and ``answer_tokens`` answer pieces."""

    def __init__(self, prompt: str, seed: int | str, reasoning_tokens: int, answer_tokens: int) -> None:
        self.prompt = prompt
        self.reasoning_tokens = reasoning_tokens
        self.answer_tokens = answer_tokens
        self._seed = f"{seed}|{prompt}"
        kws = keywords(prompt) or ["the main idea", "the context", "the details"]
        while len(kws) < 3:
            kws.append(("the context", "the details", "the assumptions")[len(kws) % 3])
        topic = _topic(prompt)
        self._fill = {
            "topic": topic, "Topic": topic[:1].upper() + topic[1:],
            "k1": kws[0], "k2": kws[1], "k3": kws[2],
            "K1": kws[0].capitalize(), "K2": kws[1].capitalize(), "K3": kws[2].capitalize(),
        }

    def _exact(self, n: int, rng: random.Random, first: tuple[str, ...], body: tuple[str, ...],
               closers: tuple[str, ...], lead: list[str]) -> Iterator[str]:
        """``n`` pieces: ``lead``, an opener, body sentences, and a closer that fits the remainder."""
        if n <= 0:
            return
        fill = self._fill
        pending = list(lead) + tokenize(rng.choice(first).format(**fill))
        closing = [tokenize(c.format(**fill)) for c in closers]
        longest_closer = max(len(c) for c in closing)
        ordered = body is _ANSWER  # numbered points stay in order
        next_body, last = 0, ""
        left = n
        while left > 0:
            if not pending:
                fits = [c for c in closing if len(c) == left]
                if fits:
                    pending = list(rng.choice(fits))
                elif left == 1:
                    pending = ["\n"]
                elif left > longest_closer and ordered:
                    pending = tokenize(body[next_body % len(body)].format(**fill))
                    next_body += 1
                else:
                    pool = body if left > longest_closer else closers
                    choice = rng.choice(pool)
                    while choice == last and len(pool) > 1:
                        choice = rng.choice(pool)
                    last = choice
                    pending = tokenize(choice.format(**fill))
                    if len(pending) > left:  # end the last sentence early, with a full stop
                        pending = pending[:left - 1] + ["."]
            take = pending[:left]
            pending = pending[left:]
            left -= len(take)
            yield from take

    def reasoning(self) -> Iterator[str]:
        rng = random.Random(self._seed + "|r")
        yield from self._exact(self.reasoning_tokens, rng, _OPENERS, _REASONING, _REASONING_CLOSERS, [])

    def answer(self) -> Iterator[str]:
        """Answer pieces; the first is "\\n\\n" (R1 writes ``</think>\\n\\n`` before its answer)."""
        rng = random.Random(self._seed + "|a")
        yield from self._exact(self.answer_tokens, rng, _ANSWER_OPEN, _ANSWER, _ANSWER_CLOSERS, ["\n\n"])

    def pieces(self) -> Iterator[tuple[str, str]]:
        """(kind, text) for every output token: reasoning..., ("think_end", "</think>"), answer...,
        ("eos", ""). Callers stop after the request's output length."""
        for t in self.reasoning():
            yield "reasoning", t
        yield "think_end", THINK_END
        for t in self.answer():
            yield "answer", t
        while True:
            yield "eos", ""
