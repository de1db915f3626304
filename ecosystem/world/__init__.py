"""Worlds: the prompts nodes see and the judge that grades their answers (the tiny world, or a real
model's prompt files)."""

Pair = tuple[str, str]  # (prompt, response), as text: what nodes generate, exchange and train on
