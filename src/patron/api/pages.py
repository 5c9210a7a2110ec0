"""The few pages people (not programs) see: the unsubscribe page, the preference centre and a refused
link. Plain server-rendered HTML that works without JavaScript: one heading, labelled controls, a
status line announced to screen readers."""

from __future__ import annotations

from html import escape

from litestar import Response
from litestar.enums import MediaType

from patron.email.preferences import Choices

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font: 1.1rem/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 36rem; padding: 0 1rem;
       color: #1a1a1a; background: #fff; }}
fieldset {{ border: 1px solid #767676; padding: 1rem; margin: 0 0 1rem; }}
label {{ margin-left: .5rem; }}
input[type=checkbox] {{ width: 1.25rem; height: 1.25rem; vertical-align: middle; }}
button {{ font: inherit; padding: .5rem 1rem; }}
:focus-visible {{ outline: 3px solid #1a5fb4; outline-offset: 2px; }}
</style>
</head>
<body><main><h1>{title}</h1>
{body}
</main></body>
</html>
"""


def page(title: str, body: str, status: int = 200) -> Response[str]:
    """A page; ``body`` is HTML the caller escaped."""
    html = _PAGE.format(title=escape(title), body=body)
    headers = {"Cache-Control": "no-store"}
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=headers)


def refused(reason: str) -> Response[str]:
    """A link that is not honoured: a plain page saying why, and nothing to follow."""
    return page("This link cannot be used", f"<p>{escape(reason)}</p>", 400)


def unsubscribe_form(action: str) -> Response[str]:
    button = '<button type="submit">Unsubscribe</button>'
    form = f'<form method="post" action="{escape(action)}">{button}</form>'
    body = f"<p>Stop marketing email to this address?</p>{form}"
    return page("Unsubscribe", body)


def unsubscribed() -> Response[str]:
    return page("You are unsubscribed", "<p>You will no longer receive marketing email from us.</p>")


def preference_centre(action: str, choices: Choices, saved: bool) -> Response[str]:
    """The form: one checkbox per channel the person can be reached on, with the state shown kept in
    hidden fields, so that saving changes only what they changed."""
    rows, kept = [], []
    for name, address, on, what in (
        ("email", choices.email, choices.email_on, "Marketing email"),
        ("sms", choices.phone, choices.sms_on, "Marketing text messages (SMS)"),
    ):
        if not address:
            continue
        checked = " checked" if on else ""
        rows.append(
            f'<div><input type="checkbox" id="{name}" name="{name}" value="on"{checked}>'
            f'<label for="{name}">{what} to {escape(address)}</label></div>'
        )
        kept.append(f'<input type="hidden" name="{name}_shown" value="{"on" if on else "off"}">')
    status = '<p role="status">Your preferences are saved.</p>' if saved else '<p role="status"></p>'
    if not rows:
        return page("Your preferences", "<p>We have no address for you to choose about.</p>")
    body = (
        f"{status}"
        f'<form method="post" action="{escape(action)}">'
        f"<fieldset><legend>What we may send you</legend>{''.join(rows)}</fieldset>"
        f"{''.join(kept)}"
        '<button type="submit">Save my preferences</button></form>'
    )
    return page("Your preferences", body)
