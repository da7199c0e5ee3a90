"""Text read from a data file, made safe for where it goes: a terminal, a Markdown/HTML page, or advice to run.

    terminal_text(name)          control characters (ANSI/OSC escapes, newlines) shown as \\x1b, \\n ...
    markdown_code(name)          `name` for plain names (the bytes cards always had), else an escaped <code>
    markdown_text(description)   & < > | ` and \\ as HTML character references (table cells, prose)
    plain_latentds_command(cmd)  whether a command read from a file may be shown as advice to run

Normal text passes unchanged, so outputs for normal input keep their bytes; only hostile text is escaped.
Imports nothing from latentds, so every layer may use it.
"""

from __future__ import annotations

import re
import shlex

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_PLAIN_CODE = re.compile(r"[A-Za-z0-9_.\-/\[\]() ,:=+~@]*")
_MARKDOWN_SPECIAL = re.compile(r"[&<>|`\\]")
_SHELL_META = re.compile(r"[;|&$`><()\\\n\r\x00-\x1f\x7f]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text, keep_tab: bool = False) -> str:
    """``text`` (str() of it) with every control character written out (``\\x1b``), so that nothing read from a
    file moves the cursor, retitles the terminal or fakes a line of output."""
    return (_CONTROL_KEEP_TAB if keep_tab else _CONTROL).sub(_escape, str(text))


def markdown_code(text) -> str:
    """``text`` as inline code in Markdown: a code span for plain names and paths, else an HTML ``<code>`` element
    whose every character but letters, digits and spaces is a character reference (no tag, table cell break,
    emphasis or code span can come out of it)."""
    text = str(text)
    if _PLAIN_CODE.fullmatch(text):
        return f"`{text}`"
    return "<code>" + "".join(c if (c.isascii() and c.isalnum()) or c == " " else f"&#{ord(c)};"
                              for c in text) + "</code>"


def markdown_text(text) -> str:
    """``text`` for Markdown prose or a table cell: ``& < > | ` \\`` as character references, control characters
    as spaces; ordinary text unchanged."""
    text = _CONTROL.sub(" ", str(text))
    return _MARKDOWN_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", text)


def plain_latentds_command(command) -> bool:
    """Whether ``command`` (read from a file: a dataset card, a progress record) is a plain ``latentds ...``
    command that may be shown as advice to run: shlex-parsable, first word ``latentds``, and no shell
    metacharacter (``; | & $ ` > < ( ) \\``), newline or control character anywhere."""
    if not isinstance(command, str) or not command.strip() or _SHELL_META.search(command):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return bool(words) and words[0] == "latentds"
