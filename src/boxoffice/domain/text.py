"""What free text may hold where it is shown, logged or mailed: one line without control characters; and
which email addresses mail can go to exactly as written."""

from __future__ import annotations

import email.policy
import re
import unicodedata
from email.errors import NonASCIILocalPartDefect

# C0 and C1 controls, DEL, and the line and paragraph separators: every character `str.splitlines` breaks
# on (\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029) is among them, and the email library refuses each in a
# header. Also the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): one of them
# in an event's name would turn the rest of a subject line or a seat map row around (right-to-left text needs
# none of them). Written as regex escapes that Python and Rust (pydantic) read alike, so that it can be a
# JSON-schema pattern too.
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
ONE_LINE = f"^[^{CONTROL}]*$"
_CONTROL_RUN = re.compile(f"[{CONTROL}]+")

# No white space, quotes, comments, groups, routes or literals: an address the mail library reads back
# as itself, and aiosmtplib puts on the RCPT line as it is.
_ADDRESS = re.compile(r'[^@\s"(),:;<>\[\]\\]+@[^@\s"(),:;<>\[\]\\]+\.[^@\s"(),:;<>\[\]\\.]+')
MAX_ADDRESS_LENGTH = 254


def has_control(text: str) -> bool:
    return _CONTROL_RUN.search(text) is not None


def has_visible(text: str) -> bool:
    """Whether anything would show: a character that is not white space, not an invisible format character
    (zero-width spaces and joiners, direction marks, the byte-order mark), not a mark that only changes the
    character before it (combining accents, variation selectors), and not one that Unicode says to draw as
    nothing (the Hangul fillers) or that is drawn blank (the empty Braille pattern). Those stay allowed among
    others: right-to-left names and some scripts need them."""
    return any(not ch.isspace() and unicodedata.category(ch) not in _SHOWN_ONLY_WITH_OTHERS
               and ch not in _DRAWN_AS_NOTHING for ch in text)


_SHOWN_ONLY_WITH_OTHERS = frozenset({"Cf", "Mn", "Me"})
# Format characters (zero-width ones, the soft hyphen, tags), private-use, unassigned and surrogate code points.
_NOT_IN_ADDRESSES = frozenset({"Cf", "Co", "Cn", "Cs"})
# Default-ignorable letters and symbols (Unicode's DerivedCoreProperties), and the blank Braille pattern.
_DRAWN_AS_NOTHING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f"
                              + "".join(map(chr, range(0xFE00, 0xFE10))))


def _is_host_label(label: str) -> bool:
    """Letters (of any script, with their marks), digits and hyphens, not at either end: no underscore."""
    return (bool(label) and label[0] != "-" and label[-1] != "-"
            and all(ch == "-" or unicodedata.category(ch)[0] in "LMN" for ch in label))


def one_line(text: str, limit: int | None = None) -> str:
    """Each run of control characters and line breaks folded into one space, the ends trimmed, and at most
    `limit` characters (the last one an ellipsis when cut)."""
    line = _CONTROL_RUN.sub(" ", text).strip()
    if limit is not None and len(line) > limit:
        return line[:limit - 1].rstrip() + "…"
    return line


def is_mail_address(text: str) -> bool:
    """A plain `local@domain.tld` (non-ASCII allowed, for servers that speak SMTPUTF8) that the email
    library parses back to exactly itself: no encoded words, empty labels or dots at the ends; nothing invisible
    in it (an address that looks like another's, or that a mail server refuses after the booking was taken);
    and a domain of host names: letters, digits and inner hyphens in each label."""
    if (len(text) > MAX_ADDRESS_LENGTH or has_control(text) or not _ADDRESS.fullmatch(text)
            or any(unicodedata.category(ch) in _NOT_IN_ADDRESSES or ch in _DRAWN_AS_NOTHING for ch in text)
            or not all(_is_host_label(label) for label in text.rpartition("@")[2].split("."))):
        return False
    header = email.policy.default.header_factory("To", text)
    return ([a.addr_spec for a in header.addresses] == [text]
            and all(isinstance(d, NonASCIILocalPartDefect) for d in header.defects))
