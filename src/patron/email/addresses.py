"""Addresses and header lines of email: what a name, an address or a subject may hold so that a
message carries exactly what the request said (no name can add a recipient, no subject a header).

Headers are built with ``email.headerregistry`` (names quoted, or encoded beyond ASCII) and checked
as they will be sent: folded, with and without SMTPUTF8, each must read back as the one mailbox it
was made from.
"""

from __future__ import annotations

import email.policy
import re
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.headerregistry import Address as Mailbox
from email.headerregistry import BaseHeader
from email.message import EmailMessage
from smtplib import quoteaddr
from typing import Annotated

import msgspec
from msgspec import Meta

from patron.email.templates import MAX_LINE, TemplateInvalid
from patron.errors import FieldInvalid

#: What a header line (a subject, a name) may hold: no control character (C0, DEL, C1: line feed,
#: carriage return, vertical tab, form feed, NEL...) and no Unicode line or paragraph separator. The
#: OpenAPI document gives the pattern; ``check_line`` and the structs' ``__post_init__`` apply it, so
#: that a refusal says what is wrong in words.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$(?!\n)"
LINE_REFUSED = "must not contain control characters or line separators"
_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A name followed later by a semicolon after a colon reads as an address group (``Friends: a@b;``).
_GROUP = re.compile(r":.*;", re.DOTALL)
_SPACES = re.compile(" +")
Line = Annotated[str, Meta(max_length=MAX_LINE, extra_json_schema={"pattern": LINE_PATTERN})]
#: A name in an address: a line, up to 256 characters (checking a longer one beyond ASCII, folded,
#: would cost the email package a second).
Name = Annotated[str, Meta(max_length=256, extra_json_schema={"pattern": LINE_PATTERN})]
#: How messages are written: lines up to RFC 5322's 998 characters before a header is folded, because
#: the email package's folding of a long quoted name can drop its quotes (and so split it into
#: addresses); ``mailbox`` checks that each address survives folding under this policy.
POLICY = email.policy.default.clone(max_line_length=MAX_LINE)
_POLICIES = (POLICY, POLICY.clone(utf8=True))  # without SMTPUTF8, and with it


def breaks_line(value: str) -> bool:
    """Whether a header line holds a control character or a line separator."""
    return _BREAKING.search(value) is not None


def check_line(field: str, value: str) -> None:
    """Refuse (``TemplateInvalid`` naming ``field``) a header line with a control character or a line
    separator, as a rendered subject may hold."""
    if _BREAKING.search(value):
        raise TemplateInvalid(field, LINE_REFUSED)


def mailbox(email: str, name: str | None) -> Mailbox:
    """The address as a header holds it (the name quoted or encoded as need be), or ``FieldInvalid``
    (a ValueError naming ``email`` or ``name``, quoting neither) when it cannot be represented exactly:
    the address must parse back as itself, also as an SMTP envelope address; the name must hold no
    control character, line separator or group syntax, and the header, folded as it is sent (with
    and without SMTPUTF8), must read back as this one mailbox. Runs of spaces in a name count as one.
    """
    name = _display(name)
    if _BREAKING.search(name):
        raise FieldInvalid("name", LINE_REFUSED)
    if _GROUP.search(name):
        raise FieldInvalid("name", "must not hold group syntax (a colon, then a semicolon)")
    try:
        address = _address(email, name)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise FieldInvalid("email", "cannot be the address of an email message") from exc
    if address.addr_spec != email or quoteaddr(email) != f"<{email}>":
        raise FieldInvalid("email", "cannot be the address of an email message")
    # an address beyond ASCII always travels with SMTPUTF8; an ASCII one may travel either way
    policies = _POLICIES if email.isascii() else _POLICIES[1:]
    if not _survives(_address(email, ""), policies):
        raise FieldInvalid("email", "cannot be the address of an email message")
    if name and not _survives(address, policies):
        raise FieldInvalid("name", "cannot be put in an address header as given")
    return address


def _address(email: str, name: str) -> Mailbox:
    """``email`` as a header's address (ValueError if it is not one). A local part beyond ASCII
    (RFC 6531), which ``email.headerregistry`` parses but counts as a defect, must have the form of
    an ASCII one."""
    try:
        parsed = Mailbox(addr_spec=email)
    except NonASCIILocalPartDefect:
        local, _, domain = email.rpartition("@")
        ascii_form = "".join(c if c.isascii() else "x" for c in local)
        if '"' in local or Mailbox(addr_spec=f"{ascii_form}@{domain}").username != ascii_form:
            raise
        return Mailbox(display_name=name, username=local, domain=domain)
    return Mailbox(display_name=name, username=parsed.username, domain=parsed.domain)


def defects(parsed: BaseHeader) -> list[Exception]:
    """A parsed header's defects, but for a local part beyond ASCII (sent with SMTPUTF8)."""
    return [d for d in parsed.defects if not isinstance(d, NonASCIILocalPartDefect)]


def _display(name: str | None) -> str:
    return _SPACES.sub(" ", name).strip() if name else ""


def _survives(address: Mailbox, policies: tuple[email.policy.EmailPolicy[EmailMessage], ...]) -> bool:
    """Whether a To header of ``address``, folded as each policy writes it, reads back as it."""
    for policy in policies:
        folded = policy.fold("To", policy.header_factory("To", address))
        parsed = policy.header_factory("To", folded.partition(":")[2].replace("\r\n", "").replace("\n", ""))
        read = [(g.display_name, [(a.display_name, a.addr_spec) for a in g.addresses]) for g in parsed.groups]
        if defects(parsed) or read != [(None, [(address.display_name, address.addr_spec)])]:
            return False
    return True


#: What a message's address may be (the OpenAPI document gives it; ``mailbox`` checks the rest): a
#: local part of dot-separated atoms and a domain of at least two labels, with no space, control
#: character or character special in an address header.
_ATOM = r'[^\s\x00-\x1f\x7f-\x9f"(),.:;<>@\[\\\]]+'
MAIL_ADDRESS_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})+$(?!\n)"
MailAddress = Annotated[str, Meta(max_length=254, pattern=MAIL_ADDRESS_PATTERN)]


class Address(msgspec.Struct, forbid_unknown_fields=True):
    """An email address and an optional name, refused unless a header can carry them exactly (the
    name is sent quoted as need be)."""

    email: MailAddress
    name: Name | None = None

    def __post_init__(self) -> None:
        mailbox(self.email, self.name)

    def header(self) -> str:
        """The header's text (``"Smith, Ann" <ann@example.org>``), kept in ``messages.sender`` and
        ``reply_to``; names beyond ASCII stay as they are (``outbox.mime`` encodes them)."""
        return str(_address(self.email, _display(self.name)))
