"""Text that reaches the terminal from outside the program (keys, values, paths, file contents),
made safe to print: one line, and no character that a terminal would act on."""

from __future__ import annotations

import unicodedata

# Control characters (escape sequences, newlines, DEL, C1), format characters (bidirectional
# overrides that reorder what is shown), line and paragraph separators, and the surrogates that
# stand for the undecodable bytes of a path.
ESCAPED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def one_line(text: object) -> str:
    """`text` as one printable line: each such character written as its Python escape (\\x1b, \\n, \\u202e)."""
    return "".join(
        ascii(character)[1:-1] if unicodedata.category(character) in ESCAPED_CATEGORIES else character
        for character in str(text)
    )
