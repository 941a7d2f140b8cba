"""Names are data: text from the input (file names, reasons, summaries that quote them) made safe
for every human-facing output: terminal, GitHub annotations, HTML, CSV, one-line errors.

A scraped file name may hold ANSI escape sequences (clear the screen, conceal text, set the
window title), newlines (print a forged ``gate passed`` line), Unicode bidi overrides that show
``gnp.exe`` for ``exe.png``, or bytes that are not UTF-8. :func:`printable` replaces each such
character with a visible escape, so the reader sees exactly what is there:

* C0 controls, DEL and C1 controls: ``\\x1b``, ``\\x0a``, ``\\x7f``, ``\\x9b``;
* bidi embeddings, overrides, isolates and marks (U+061C, U+200E/F, U+202A..U+202E,
  U+2066..U+2069), zero-width characters (U+200B..U+200D, U+2060, U+FEFF) and line / paragraph
  separators (U+2028/9): ``\\u202e``;
* lone surrogates, which is how Python represents the bytes of a file name that is not UTF-8
  (``os.fsdecode``'s surrogateescape: byte 0xff becomes U+DCFF): ``\\udcff``. Writing them raw
  would raise UnicodeEncodeError; ``os.fsencode(id)`` of the exact id (kept in the JSON report)
  gives back the original bytes.

Everything else, including non-Latin scripts and emoji, is left as it is. The JSON report keeps
the exact ids (see ``audit.report.json``).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control, bidi, invisible and surrogate character shown as an escape."""
    s = str(text)
    return _UNSAFE.sub(_escape, s)


def has_unsafe(text: str) -> bool:
    """True when :func:`printable` would change ``text``."""
    return _UNSAFE.search(text) is not None
