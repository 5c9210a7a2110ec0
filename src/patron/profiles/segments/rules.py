"""The segments' rule language: a tree of ``all`` / ``any`` / ``not`` over conditions, as JSON.

Each node is a msgspec Struct, told apart by the key that names its kind (``{"all": [...]}``,
``{"field": "stats.orders", "op": "gte", "value": 2}``...), so the JSON reads as the rule does. A rule
is read by :func:`parse`, which bounds it (:data:`MAX_DEPTH`, :data:`MAX_CONDITIONS`,
:data:`MAX_ITEMS`, the sizes of values) and names the path of the first bad part
(``rules.all[2].op``) in an :class:`patron.errors.Invalid`. docs/segments.md describes the language.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from patron.errors import FieldError, FieldInvalid, Invalid
from patron.records.fields import ID_PATTERN, MAX_ID_LENGTH

#: How deep ``all`` / ``any`` / ``not`` may nest (a condition at the top is depth 1).
MAX_DEPTH: Final = 6
#: The most conditions (leaves) one rule may hold.
MAX_CONDITIONS: Final = 32
#: The most rules one ``all`` or ``any`` may list, and values one ``in`` may give.
MAX_ITEMS: Final = 32
#: The longest text value a condition may compare with.
MAX_TEXT: Final = 200
#: The longest window or relative moment: 100 years.
MAX_DAYS: Final = 36_600

_RULE_REF: Final = {"$ref": "#/components/schemas/Rule"}
Children = Annotated[
    list[Any], Meta(min_length=1, max_length=MAX_ITEMS, extra_json_schema={"items": _RULE_REF})
]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
Scalar = Text | float | bool
#: A moment: relative to now (``-90d``, ``-12h``: that long ago) or absolute (``2024-01-31`` or an ISO
#: 8601 timestamp with an offset).
Moment = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=40,
        description="-Nd or -Nh (N days or hours ago), a YYYY-MM-DD day or an ISO 8601 timestamp",
        examples=["-90d", "2024-01-31", "2024-01-31T12:00:00+00:00"],
    ),
]
_RELATIVE = re.compile(r"^-(\d{1,6})([dh])$")
PropertyName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
ProductId = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Compare = Literal["eq", "ne", "gt", "gte", "lt", "lte"]
Count = Annotated[float, Meta(ge=0, le=1e12)]


def relative(value: str) -> timedelta | None:
    """How long ago a relative moment (``-90d``) is; None for an absolute one."""
    found = _RELATIVE.match(value)
    if found is None:
        return None
    n, unit = int(found.group(1)), found.group(2)
    return timedelta(days=n) if unit == "d" else timedelta(hours=n)


def _absolute(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        if "T" in value or " " in value:
            raise ValueError("a timestamp needs an offset")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _check_moment(name: str, value: str | None) -> None:
    if value is None:
        return
    ago = relative(value)
    if ago is not None:
        if ago > timedelta(days=MAX_DAYS):
            raise FieldInvalid(name, f"is more than {MAX_DAYS} days ago")
        return
    try:
        _absolute(value)
    except (ValueError, OverflowError):
        raise FieldInvalid(
            name, "is neither -Nd / -Nh nor a YYYY-MM-DD day or an ISO 8601 timestamp"
        ) from None


def moment(value: str, now: datetime) -> datetime:
    """The moment ``value`` names, as of ``now``."""
    ago = relative(value)
    return now - ago if ago is not None else _absolute(value)


def stamp(value: datetime) -> str:
    """A moment as the documents write it (``2015-11-03T11:48:10+00:00``), which sorts as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class _Node(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class All(_Node):
    """Every rule listed holds."""

    all: Children


class AnyOf(_Node):
    """At least one rule listed holds."""

    any: Children


class Not(_Node):
    """The rule does not hold."""

    not_: Annotated[dict[str, Any], Meta(extra_json_schema=_RULE_REF)] = msgspec.field(name="not")


#: Profile fields a ``field`` condition may read, with the type of their values.
FIELDS: Final[dict[str, str]] = {
    **{f"stats.{name}": "number" for name in ("orders", "orders_attempted", "revenue", "aov")},
    **{f"stats.{name}": "number" for name in ("total_items", "visits", "email_clicks")},
    **dict.fromkeys(
        (
            "customer_id",
            "email",
            "firstname",
            "lastname",
            "gender",
            "date_of_birth",
            "country_id",
            "channels.sms.status",
        ),
        "text",
    ),
    "marketing_optin": "bool",
    "channels.sms.allow_marketing": "bool",
}
PROPERTY = "properties."
FieldOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "missing"]


class FieldCondition(_Node):
    """A profile field compared with a value: ``stats.*``, names, ``country_id``, ``gender``,
    ``marketing_optin``, ``channels.sms.*`` or ``properties.NAME`` (a contact property)."""

    field: Annotated[str, Meta(min_length=1, max_length=80)]
    op: FieldOp
    value: Scalar | Annotated[list[Scalar], Meta(min_length=1, max_length=MAX_ITEMS)] | None = None

    def __post_init__(self) -> None:
        if self.field.startswith(PROPERTY):
            name = self.field.removeprefix(PROPERTY)
            if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", name):
                raise FieldInvalid("field", "a property's name is 1 to 64 letters, digits, - or _")
            kind = None
        elif self.field in FIELDS:
            kind = FIELDS[self.field]
        else:
            raise FieldInvalid(
                "field", f"is not a profile field a segment may read ({', '.join(FIELDS)}, properties.NAME)"
            )
        if self.op in ("exists", "missing"):
            if self.value is not None:
                raise FieldInvalid("value", f"is not given with {self.op}")
            return
        if self.value is None:
            raise FieldInvalid("value", f"is required with {self.op}")
        values = self.value if isinstance(self.value, list) else [self.value]
        if (self.op == "in") != isinstance(self.value, list):
            raise FieldInvalid("value", "is a list with in, and only with in")
        for value in values:
            if kind is not None and _kind(value) != kind:
                raise FieldInvalid("value", f"must be a {kind} for {self.field}")
            if self.op in ("gt", "gte", "lt", "lte") and isinstance(value, bool):
                raise FieldInvalid("op", "orders numbers and text, not true or false")


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "text"


class ConsentCondition(_Node):
    """A channel's marketing consent: ``subscribed``, ``unsubscribed``, ``pending`` (SMS double opt-in
    asked for) or ``unknown`` (never given)."""

    consent: Literal["email", "sms"]
    is_: Literal["subscribed", "unsubscribed", "pending", "unknown"] = msgspec.field(name="is")

    def __post_init__(self) -> None:
        if self.consent == "email" and self.is_ == "pending":
            raise FieldInvalid("is", "email consent has no pending status")


class ListCondition(_Node):
    """A member of the static list of this id."""

    list: ProductId


DATES: Final = (
    "dates.acquired",
    "dates.first_purchase",
    "dates.last_purchase",
    "dates.first_seen",
    "dates.last_seen",
    "dates.last_email_click",
)


class DateCondition(_Node):
    """A profile date before and/or after a moment (``{"date": "dates.last_purchase", "before":
    "-90d"}``: more than 90 days ago); a date the profile does not have meets neither."""

    date: Literal[
        "dates.acquired",
        "dates.first_purchase",
        "dates.last_purchase",
        "dates.first_seen",
        "dates.last_seen",
        "dates.last_email_click",
    ]
    before: Moment | None = None
    after: Moment | None = None

    def __post_init__(self) -> None:
        if self.before is None and self.after is None:
            raise FieldInvalid("before", "give before, after or both")
        _check_moment("before", self.before)
        _check_moment("after", self.after)


class ProductAttribute(_Node):
    """A product attribute as products give them (``{"type": "brand", "id": "acme"}``)."""

    type: Annotated[str, Meta(min_length=1, max_length=64)]
    id: ProductId


class OrdersCondition(_Node):
    """The count (or the revenue) of the profile's valid orders, since a moment, with a line item of
    a product or of a product with an attribute, compared with a value: ``{"orders": "count", "op":
    "gte", "value": 2, "since": "-30d"}``."""

    orders: Literal["count", "revenue"]
    op: Compare = "gte"
    value: Count = 1
    since: Moment | None = None
    product: ProductId | None = None
    attribute: ProductAttribute | None = None

    def __post_init__(self) -> None:
        _check_moment("since", self.since)


class EventProperty(_Node):
    name: PropertyName
    value: Scalar


class EventsCondition(_Node):
    """How many custom events of a type the profile has (since a moment, with a property of a value),
    compared with a value: ``{"event": "wishlist_add", "op": "gte", "value": 1}``."""

    event: Annotated[str, Meta(min_length=1, max_length=32)]
    op: Compare = "gte"
    value: Count = 1
    since: Moment | None = None
    property: EventProperty | None = None

    def __post_init__(self) -> None:
        _check_moment("since", self.since)


class ViewedCondition(_Node):
    """Product views on the website (the tag's), of a product or any (``"viewed": "*"``), since a
    moment, compared with a count."""

    viewed: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^(\*|\S+)$")]
    op: Compare = "gte"
    value: Count = 1
    since: Moment | None = None

    def __post_init__(self) -> None:
        _check_moment("since", self.since)


class AbandonedCondition(_Node):
    """Website sessions that ended with a basket abandoned (``basket``) or products browsed and none
    bought (``browse``), since a moment, compared with a count."""

    abandoned: Literal["basket", "browse"]
    op: Compare = "gte"
    value: Count = 1
    since: Moment | None = None

    def __post_init__(self) -> None:
        _check_moment("since", self.since)


Condition = (
    FieldCondition
    | ConsentCondition
    | ListCondition
    | DateCondition
    | OrdersCondition
    | EventsCondition
    | ViewedCondition
    | AbandonedCondition
)
Rule = All | AnyOf | Not | Condition
#: Each kind of node, by the key that names it.
KINDS: Final[dict[str, type[_Node]]] = {
    "all": All,
    "any": AnyOf,
    "not": Not,
    "field": FieldCondition,
    "consent": ConsentCondition,
    "list": ListCondition,
    "date": DateCondition,
    "orders": OrdersCondition,
    "event": EventsCondition,
    "viewed": ViewedCondition,
    "abandoned": AbandonedCondition,
}
#: Every node type, for the OpenAPI document (``Rule`` is one of them).
NODES: Final = tuple(KINDS.values())


class _Count:
    conditions = 0


def _at(path: str, sub: str) -> str:
    """A msgspec path under a node (``$.op``, ``$.attribute.id``) as ours (``rules.all[2].op``)."""
    return path + sub.removeprefix("$")


def _bad(path: str, message: str) -> Invalid:
    return Invalid(f"{path}: {message}", errors=[FieldError(path, message)])


def _node(raw: Any, path: str, depth: int, count: _Count) -> Rule:
    if depth > MAX_DEPTH:
        raise _bad(path, f"is nested more than {MAX_DEPTH} deep")
    if not isinstance(raw, dict):
        raise _bad(path, "must be an object (a rule)")
    named = [key for key in KINDS if key in raw]
    if len(named) != 1:
        kinds = ", ".join(KINDS)
        raise _bad(path, f"must name exactly one kind of rule ({kinds})")
    kind = KINDS[named[0]]
    try:
        node = msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).rpartition(" - at `")
        if not text:
            text, where = str(exc), "$"
        checked = FieldInvalid.read(text)
        if checked is not None:
            raise _bad(_at(path, where.rstrip("`")) + "." + checked.path, checked.message) from None
        raise _bad(_at(path, where.rstrip("`")), text) from None
    if isinstance(node, All):
        node.all = [_node(child, f"{path}.all[{i}]", depth + 1, count) for i, child in enumerate(node.all)]
    elif isinstance(node, AnyOf):
        node.any = [_node(child, f"{path}.any[{i}]", depth + 1, count) for i, child in enumerate(node.any)]
    elif isinstance(node, Not):
        node.not_ = _node(node.not_, f"{path}.not", depth + 1, count)  # type: ignore[assignment]
    else:
        count.conditions += 1
        if count.conditions > MAX_CONDITIONS:
            raise _bad(path, f"is one condition more than the {MAX_CONDITIONS} a rule may hold")
    return node  # type: ignore[return-value]


def parse(raw: Any, path: str = "rules") -> Rule:
    """The rule tree of JSON already decoded (``raw``), checked; :class:`Invalid` naming the path of
    the first bad part."""
    return _node(raw, path, 1, _Count())


_encode = msgspec.json.Encoder().encode


def dump(rule: Rule) -> str:
    """A rule's JSON text, as stored (and as :func:`load` reads it back)."""
    return _encode(rule).decode()


def load(text: str) -> Rule:
    """A stored rule."""
    return parse(msgspec.json.decode(text))


def is_relative(rule: Rule) -> bool:
    """Whether the rule reads "now" (a relative moment), so that time alone may change who is in."""
    return any(
        relative(value) is not None
        for node in walk(rule)
        for value in (
            getattr(node, "before", None),
            getattr(node, "after", None),
            getattr(node, "since", None),
        )
        if isinstance(value, str)
    )


def walk(rule: Rule) -> list[Rule]:
    """Every node of the tree, the root first."""
    found: list[Rule] = [rule]
    if isinstance(rule, All):
        found += [n for child in rule.all for n in walk(child)]
    elif isinstance(rule, AnyOf):
        found += [n for child in rule.any for n in walk(child)]
    elif isinstance(rule, Not):
        found += walk(rule.not_)  # type: ignore[arg-type]
    return found


def schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of a rule: ``Rule`` (one of the node types) and the components it names."""
    refs, components = msgspec.json.schema_components(NODES, ref_template="#/components/schemas/{name}")
    components["Rule"] = {"oneOf": list(refs), "description": "A segment's rule (docs/segments.md)"}
    return dict(_RULE_REF), components


Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class SegmentBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v2/segments`` and ``PUT /v2/segments/{id}``: a name and a rule."""

    name: Name
    rules: Annotated[dict[str, Any], Meta(extra_json_schema=_RULE_REF)]


class Export(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v2/segments/{id}/export``: the static list the members are added to (made if new)."""

    list_id: ProductId
