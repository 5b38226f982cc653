"""Text people type and read: refused when it hides characters, escaped when it is shown.

- `check_clean` refuses control characters (NUL, ESC and every other C0/C1 control, DEL)
  and the characters that reorder or hide text (bidirectional embeddings, overrides,
  isolates and marks, line and paragraph separators) in names and notes, so that no stored
  value can rewrite an operator's terminal or show a page a name other than the one stored.
- `printable` makes any text safe for a terminal: those characters become visible escapes
  such as `\\x1b` and `\\u202e`.
- `mixed_script_labels` finds domain labels that mix scripts (UTS 39's single-script rule,
  with Japanese and Korean text counted as one script each, and Latin allowed beside them),
  as a look-alike such as `exаmple` with a Cyrillic `а` does.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Any

# Characters that change the order or the visibility of the text around them.
BIDI_CONTROLS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT and RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, pop, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
    "\u2028\u2029"  # line and paragraph separators
)
MULTILINE_ALLOWED = frozenset("\n\t")


def _hidden(char: str, allowed: frozenset[str] = frozenset()) -> bool:
    if char in allowed:
        return False
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    if not name:
        name = {"\x00": "NUL", "\x1b": "ESCAPE", "\x7f": "DELETE"}.get(char, "a control character")
    return f"U+{ord(char):04X} {name}"


def check_clean(value: str, what: str, *, multiline: bool = False) -> str:
    """`value`, or ValueError naming the first hidden character and where it is.

    `multiline` allows line feeds and tabs (notes); a carriage return is never needed, as
    forms send CRLF: it is read as a line feed.
    """
    if multiline:
        value = value.replace("\r\n", "\n")
    allowed = MULTILINE_ALLOWED if multiline else frozenset()
    for index, char in enumerate(value):
        if _hidden(char, allowed):
            kind = (
                "a character that reorders text" if char in BIDI_CONTROLS else "a control character"
            )
            raise ValueError(
                f"the {what} contains {kind} ({_describe(char)}) at position {index + 1}: "
                "retype it without"
            )
    return value


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """`text` with every hidden character replaced by a visible escape (`\\x1b`, `\\u202e`)."""
    allowed = frozenset("\n") if keep_newlines else frozenset()
    if not any(_hidden(char, allowed) for char in text):
        return text
    out = []
    for char in text:
        if _hidden(char, allowed):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


# --- mixed scripts (UTS 39, section 5.1) --------------------------------------------------------

# The scripts of the world's writing that appear in domain names. A letter of a script not
# listed counts as its own script, named from its character name.
SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana", "Nko",
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
    "Malayalam", "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Georgian", "Hangul",
    "Ethiopic", "Cherokee", "Canadian_Aboriginal", "Khmer", "Mongolian", "Hiragana",
    "Katakana", "Bopomofo", "Han", "Yi", "Tifinagh", "Javanese", "Balinese", "Sundanese",
    "Ol_Chiki", "Vai", "Bamum", "Adlam", "Tai_Le", "Tai_Tham", "Tai_Viet", "Cham", "Coptic",
)  # fmt: skip
# Writing systems that mix scripts by nature (UTS 39's augmented script sets).
AUGMENTED = {
    "Han": {"Han", "Jpan", "Kore", "Hanb"},
    "Hiragana": {"Jpan"},
    "Katakana": {"Jpan"},
    "Hangul": {"Kore"},
    "Bopomofo": {"Hanb"},
}


@cache
def _patterns() -> tuple[dict[str, Any], Any]:
    # Loaded on first use: the command line prints text without needing it.
    import regex

    scripts = {name: regex.compile(rf"\p{{scx={name}}}") for name in SCRIPTS}
    return scripts, regex.compile(r"[\p{scx=Common}\p{scx=Inherited}]")


@cache
def _scripts_of(char: str) -> frozenset[str] | None:
    """The augmented script set of a character; None for Common and Inherited (any script)."""
    patterns, common = _patterns()
    found: set[str] = set()
    for name, pattern in patterns.items():
        if pattern.match(char):
            found |= AUGMENTED.get(name, {name})
    if found:
        return frozenset(found)
    if common.match(char):
        return None
    return frozenset({unicodedata.name(char, f"U+{ord(char):04X}").split()[0].title()})


def label_scripts(label: str) -> tuple[set[str], bool]:
    """The scripts a label uses, and whether a single script (or writing system) covers it."""
    resolved: set[str] | None = None
    used: set[str] = set()
    for char in label:
        scripts = _scripts_of(char)
        if scripts is None:
            continue
        used |= {s for s in scripts if s not in ("Jpan", "Kore", "Hanb")}
        resolved = set(scripts) if resolved is None else resolved & scripts
    # Latin is allowed beside Japanese, Chinese (with Bopomofo) and Korean (UTS 39's
    # "highly restrictive" level), as in names that mix romaji or English with kanji.
    if resolved is not None and not resolved and "Latin" in used:
        rest = "".join(c for c in label if _scripts_of(c) != frozenset({"Latin"}))
        if (
            rest
            and label_scripts(rest)[1]
            and used - {"Latin"}
            <= {
                "Han",
                "Hiragana",
                "Katakana",
                "Hangul",
                "Bopomofo",
            }
        ):
            return used, True
    return used, resolved is None or bool(resolved)


def mixed_script_labels(unicode_name: str) -> list[tuple[str, list[str]]]:
    """Each label of the name that mixes scripts, with the scripts it mixes."""
    found = []
    for label in unicode_name.split("."):
        used, single = label_scripts(label)
        if not single:
            found.append((label, sorted(used)))
    return found


def odd_characters(label: str) -> list[str]:
    """The characters of a mixed-script label outside its most used script, as a person can
    find them: `“а” (U+0430 CYRILLIC SMALL LETTER A)`."""
    counts: dict[str, int] = {}
    for char in label:
        for script in _scripts_of(char) or ():
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return []
    main = max(counts, key=lambda script: counts[script])
    odd = []
    for char in dict.fromkeys(label):
        scripts = _scripts_of(char)
        if scripts is not None and main not in scripts:
            odd.append(f"\u201c{char}\u201d ({_describe(char)})")
    return odd
