"""Output checks for GSM8K answers: the validators the escalation cascade runs.

GSM8K reference solutions (and answers written in their style, as Mixtral's here) annotate
each calculation as ``<<48/2=24>>`` and end with ``#### 72``. Three checks read an answer:

- `arithmetic_problem`: every ``<<expression=result>>`` annotation recomputes (exact
  arithmetic on + - * / and parentheses; results compared to 2 decimals, as money is
  rounded), and no annotation is cut off (an answer stopped at its token limit);
- `final_answer_problem`: a final answer can be read (``#### n``, else the last number of the
  answer) and is a whole number: every GSM8K answer is an integer, so a fraction or a
  decimal there is a wrong answer or an unfinished one;
- `answer_features`: numbers describing the answer and the question (length, steps, numbers
  of the question left unused, a missing ``####``...) for a learned confidence model, since
  most wrong answers are wrong in reasoning and pass both checks above.

The checks never see the correctness labels: they read the answer text and the prompt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "FEATURE_NAMES",
    "answer_features",
    "arithmetic_problem",
    "content_of",
    "final_answer",
    "final_answer_problem",
    "prompt_of",
]

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_SAFE = re.compile(r"[\d.\s+\-*/()]+")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[+\-*/()]")


def content_of(response: Any) -> str:
    """The text of a litellm response's first choice ('' when there is none)."""
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    return str(getattr(message, "content", None) or "")


def prompt_of(request: Mapping[str, Any]) -> str:
    """The user text of a request's messages."""
    messages = request.get("messages") or []
    return "\n".join(
        str(m.get("content") or "")
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in ("user", None)
    )


def _number(text: str) -> Fraction | None:
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


class _Parser:
    """A recursive-descent evaluator for + - * / and parentheses over exact fractions.

    Written out rather than ``eval``: the text comes from a model's output.
    """

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expression(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = value + right if op == "+" else value - right
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.factor()
            value = value * right if op == "*" else value / right
        return value

    def factor(self) -> Fraction:
        token = self.peek()
        if token == "-":
            self.take()
            return -self.factor()
        if token == "(":
            self.take()
            value = self.expression()
            if self.peek() != ")":
                raise ValueError("unbalanced parenthesis")
            self.take()
            return value
        if token is None or not token[0].isdigit():
            raise ValueError(f"unexpected {token!r}")
        return Fraction(self.take())


def evaluate(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None if it is not one we can read."""
    text = expression.replace(",", "").replace("$", "").replace("x", "*").replace("×", "*")
    text = text.replace("÷", "/")
    if not text.strip() or not _SAFE.fullmatch(text):
        return None
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        return None
    parser = _Parser(tokens)
    try:
        value = parser.expression()
    except (ValueError, ZeroDivisionError, IndexError):
        return None
    return value if parser.peek() is None else None


def arithmetic_problem(text: str) -> str | None:
    """None if every calculator annotation recomputes, else what is wrong."""
    if text.count("<<") != text.count(">>"):
        return "a calculator annotation is cut off (the answer stopped mid-calculation)"
    for body in _ANNOTATION.findall(text):
        expression, sep, result = body.rpartition("=")
        if not sep:
            continue
        want = evaluate(expression)
        got = _number(result)
        if want is None or got is None:
            continue  # not plain arithmetic (units, percentages): nothing to check
        if abs(want - got) > Fraction(1, 100) and round(want, 2) != got:
            shown = float(want)
            return f"<<{body}>> is wrong: {expression.strip()} = {shown:g}"
    return None


def final_answer(text: str) -> Fraction | None:
    """The ``#### n`` answer, else the last number in the text, else None."""
    match = _FINAL.search(text)
    if match is not None:
        return _number(match.group(1))
    numbers = _NUMBER.findall(text)
    return _number(numbers[-1]) if numbers else None


def final_answer_problem(text: str) -> str | None:
    """None if a whole-number final answer can be read, else why not."""
    value = final_answer(text)
    if value is None:
        return "no final answer"
    if value.denominator != 1:
        return f"the final answer {float(value):g} is not a whole number"
    return None


# Words that mark the kind of reasoning a question needs, or an answer that hedges.
_QUESTION_WORDS = (
    "percent",
    "%",
    "fraction",
    "average",
    "each",
    "per ",
    "total",
    "remain",
    "left",
    "more than",
    "less than",
    "times",
    "half",
    "twice",
    "hour",
    "minute",
    "week",
    "year",
)
_ANSWER_WORDS = ("assum", "approx", "however", "round", "≈", "total", "remain", "half")

FEATURE_NAMES: tuple[str, ...] = (
    "arithmetic_problem",
    "final_answer_problem",
    "no_marker",
    "marker_differs_from_last_step",
    "log_answer_chars",
    "log_question_chars",
    "steps",
    "question_numbers",
    "question_numbers_unused",
    "share_unused",
    "final_in_question",
    "log_final",
    "answer_lines",
    "steps_per_question_number",
    "new_decimals",
    *(f"q:{w}" for w in _QUESTION_WORDS),
    *(f"a:{w}" for w in _ANSWER_WORDS),
    "equals_signs",
    "paragraphs",
    "says_therefore",
    "says_so",
    "final_negative",
    "final_zero",
    "distinct_numbers",
    "over_1500_chars",
    "ends_cleanly",
)
"""Names of `answer_features`' values, in order (the last nine: how the answer is written,
which lowered the strong share a 95% cascade needs on GSM8K by about two points)."""


def answer_features(question: str, answer: str) -> list[float]:
    """Numbers describing an answer and its question (see `FEATURE_NAMES`)."""
    question_numbers = {v for v in (_number(x) for x in _NUMBER.findall(question)) if v is not None}
    answer_numbers = [v for v in (_number(x) for x in _NUMBER.findall(answer)) if v is not None]
    unused = question_numbers - set(answer_numbers)
    marker = _FINAL.search(answer)
    steps = _ANNOTATION.findall(answer)
    final = final_answer(answer)
    last_step = _number(steps[-1].rpartition("=")[2]) if steps else None
    lowered_q, lowered_a = question.lower(), answer.lower()
    new_decimals = sum(
        1 for v in answer_numbers if v.denominator != 1 and v not in question_numbers
    )
    return [
        float(arithmetic_problem(answer) is not None),
        float(final_answer_problem(answer) is not None),
        float(marker is None),
        float(marker is not None and last_step is not None and final != last_step),
        math.log1p(len(answer)),
        math.log1p(len(question)),
        float(len(steps)),
        float(len(question_numbers)),
        float(len(unused)),
        len(unused) / max(1, len(question_numbers)),
        float(final is not None and final in question_numbers),
        math.log1p(abs(float(final))) if final is not None else 0.0,
        float(len(answer.splitlines())),
        len(steps) / max(1, len(question_numbers)),
        float(new_decimals),
        *(float(w in lowered_q) for w in _QUESTION_WORDS),
        *(float(w in lowered_a) for w in _ANSWER_WORDS),
        float(answer.count("=")),
        float(answer.count("\n\n")),
        float("therefore" in lowered_a),
        float("so," in lowered_a),
        float(final is not None and final < 0),
        float(final is not None and final == 0),
        float(len(set(answer_numbers))),
        float(len(answer) > 1500),
        float(answer.rstrip().endswith((".", ")", ">"))),
    ]


def feature_rows(pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
    """`answer_features` of (question, answer) pairs."""
    return [answer_features(q, a) for q, a in pairs]


def message_texts(messages: Any, user_only: bool = False) -> list[str]:
    """The text parts of chat messages (only the user's with `user_only`), in order."""
    out: list[str] = []
    if not isinstance(messages, list):
        return out
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if user_only and message.get("role") not in ("user", None):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(
                p["text"]
                for p in content
                if isinstance(p, Mapping) and isinstance(p.get("text"), str)
            )
    return out
