"""The four record types of ``POST /v2/push`` (reference section 5.1-5.4), as msgspec Structs.

Every optional field defaults to ``UNSET``, so an absent field and a JSON ``null`` stay different: an
absent field leaves the stored value alone, ``null`` deletes it. Encoding a record omits its unset
fields, which is also how fields the schema does not know are dropped before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from patron.errors import FieldInvalid
from patron.records.fields import (
    Collection,
    Country,
    Currency,
    Day,
    Email,
    Id,
    Money,
    Name,
    Phone,
    Properties,
    Quantity,
    Text,
    Timestamp,
    checks_of,
    post_init,
)

#: The most records one push may hold.
MAX_RECORDS = 100


class Part(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A part of a record. Its fields whose types carry a check (``Id``, ``Timestamp``, ``Day``,
    ``Currency``, ``Country``: ``fields.Check``) are checked and normalised after decoding, by a
    ``__post_init__`` written for each subclass from its annotations (``checks``), so that no field
    of a checked type can go unchecked; then the subclass's own ``__post_init__``, if it has one."""

    #: The checked fields and their kinds (field -> kind of ``fields.FIXES``, or ``id``).
    checks: ClassVar[dict[str, str]] = {}
    #: What a part checks itself after the fields (its own ``__post_init__``; its strict twin's too).
    _after_checks: ClassVar[Callable[[Any], None] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None:
            cls._after_checks = own
        cls.checks = checks_of(cls)
        if cls.checks or cls._after_checks is not None:
            cls.__post_init__ = post_init(cls.checks, then=cls._after_checks)  # type: ignore[attr-defined]


class Record(Part, tag_field="@type"):
    """A pushed record: one of the subclasses, told apart by ``@type``."""

    id: Id


# contact ----------------------------------------------------------------------------------------

MarketingOptin = Literal["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"]
ListId = Id
#: The most lists one push may name in its contacts' ``@add_to_lists`` (one contact's
#: ``@remove_from_lists`` too): a push can create only so many lists.
MAX_LISTS_PER_PUSH = 100
ListIds = Annotated[list[ListId], Meta(max_length=MAX_LISTS_PER_PUSH)]


class SmsChannel(Part):
    allow_marketing: bool | UnsetType | None = UNSET
    allow_transactional: bool | UnsetType | None = UNSET
    dt_updated_marketing: Timestamp | UnsetType | None = UNSET
    dt_updated_transactional: Timestamp | UnsetType | None = UNSET


class Channels(Part):
    sms: SmsChannel | UnsetType | None = UNSET


class Contact(Record, tag="contact"):
    collection: Collection = field(name="@collection", default="default")
    merge: bool | UnsetType = field(name="@merge", default=UNSET)
    force_optin: bool | UnsetType = field(name="@force_optin", default=UNSET)
    add_to_lists: ListIds | UnsetType = field(name="@add_to_lists", default=UNSET)
    remove_from_lists: ListIds | UnsetType = field(name="@remove_from_lists", default=UNSET)
    profile_id: Id | UnsetType = field(name="@profile_id", default=UNSET)
    email: Email | UnsetType | None = UNSET
    customer_id: Id | UnsetType | None = UNSET
    phone_number: Phone | UnsetType | None = UNSET
    prefix: Text | UnsetType | None = UNSET
    suffix: Text | UnsetType | None = UNSET
    firstname: Text | UnsetType | None = UNSET
    middlename: Text | UnsetType | None = UNSET
    lastname: Text | UnsetType | None = UNSET
    gender: Literal["m", "f", "o"] | UnsetType | None = UNSET
    date_of_birth: Day | UnsetType | None = UNSET
    country_id: Country | UnsetType | None = UNSET
    timezone: Text | UnsetType | None = UNSET
    store_ids: list[Text] | UnsetType | None = UNSET
    store_id: Text | UnsetType | None = UNSET
    marketing_optin: MarketingOptin | bool | UnsetType | None = UNSET
    timestamp_acquired: Timestamp | UnsetType | None = UNSET
    timestamp_subscribed: Timestamp | UnsetType | None = UNSET
    timestamp_unsubscribed: Timestamp | UnsetType | None = UNSET
    channels: Channels | UnsetType | None = UNSET
    properties: Properties | UnsetType | None = UNSET


# order ------------------------------------------------------------------------------------------


class Customer(Part):
    id: Id | UnsetType | None = UNSET
    email: Email | UnsetType | None = UNSET
    prefix: Text | UnsetType | None = UNSET
    firstname: Text | UnsetType | None = UNSET
    lastname: Text | UnsetType | None = UNSET


class Address(Part):
    firstname: Text | UnsetType | None = UNSET
    lastname: Text | UnsetType | None = UNSET
    city: Text | UnsetType | None = UNSET
    state: Text | UnsetType | None = UNSET
    postcode: Text | UnsetType | None = UNSET
    country_code: Country | UnsetType | None = UNSET


class VariantOption(Part):
    id: Text
    type: Text
    label: Text


class LineTotals(Part):
    currency: Currency | UnsetType | None = UNSET
    unit_price: Money | UnsetType | None = UNSET
    discount: Money | UnsetType | None = UNSET
    refunded: Money | UnsetType | None = UNSET
    subtotal: Money | UnsetType | None = UNSET
    tax: Money | UnsetType | None = UNSET
    total: Money | UnsetType | None = UNSET


class LineTotalsPair(Part):
    base: LineTotals | UnsetType | None = UNSET
    local: LineTotals | UnsetType | None = UNSET


class LineItem(Part):
    product_id: Id
    quantity: Quantity
    variant_id: Id | UnsetType | None = UNSET
    sku: Text | UnsetType | None = UNSET
    unit_price: Money | UnsetType | None = UNSET
    subtotal: Money | UnsetType | None = UNSET
    tax: Money | UnsetType | None = UNSET
    discount: Money | UnsetType | None = UNSET
    total: Money | UnsetType | None = UNSET
    quantity_refunded: Quantity | UnsetType | None = UNSET
    refunded: Money | UnsetType | None = UNSET
    is_on_sale: bool | UnsetType | None = UNSET
    variant_options: list[VariantOption] | UnsetType | None = UNSET
    totals: LineTotalsPair | UnsetType | None = UNSET
    properties: Properties | UnsetType | None = UNSET


class OrderTotals(Part):
    currency: Currency | UnsetType | None = UNSET
    subtotal: Money | UnsetType | None = UNSET
    discount: Money | UnsetType | None = UNSET
    shipping: Money | UnsetType | None = UNSET
    tax: Money | UnsetType | None = UNSET
    grand_total: Money | UnsetType | None = UNSET


class OrderTotalsPair(Part):
    base: OrderTotals | UnsetType | None = UNSET
    local: OrderTotals | UnsetType | None = UNSET


class Order(Record, tag="order"):
    merge: bool | UnsetType = field(name="@merge", default=UNSET)
    timestamp: Timestamp | UnsetType | None = UNSET
    grand_total: Money | UnsetType | None = UNSET
    subtotal: Money | UnsetType | None = UNSET
    discount: Money | UnsetType | None = UNSET
    shipping: Money | UnsetType | None = UNSET
    tax: Money | UnsetType | None = UNSET
    total_refunded: Money | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    status: Text | UnsetType | None = UNSET
    is_valid: bool | UnsetType | None = UNSET
    web_id: Text | UnsetType | None = UNSET
    ip_address: Text | UnsetType | None = UNSET
    channel: Text | UnsetType | None = UNSET
    store: Text | UnsetType | None = UNSET
    payment_method: Text | UnsetType | None = UNSET
    shipping_method: Text | UnsetType | None = UNSET
    coupon_code: Text | UnsetType | None = UNSET
    customer: Customer | UnsetType | None = UNSET
    shipping_address: Address | UnsetType | None = UNSET
    billing_address: Address | UnsetType | None = UNSET
    lineitems: list[LineItem] | UnsetType | None = UNSET
    totals: OrderTotalsPair | UnsetType | None = UNSET
    properties: Properties | UnsetType | None = UNSET


# product ----------------------------------------------------------------------------------------


class Attribute(Part):
    type: Text
    id: Id
    label: Text | UnsetType | None = UNSET


class Listing(Part):
    store: Text
    title: Text | UnsetType | None = UNSET
    price: Money | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    is_active: bool | UnsetType | None = UNSET
    special_price: Money | UnsetType | None = UNSET
    special_price_dt_from: Timestamp | UnsetType | None = UNSET
    special_price_dt_to: Timestamp | UnsetType | None = UNSET
    url: Text | UnsetType | None = UNSET
    image_url: Text | UnsetType | None = UNSET


class Product(Record, tag="product"):
    merge: bool | UnsetType = field(name="@merge", default=UNSET)
    title: Text | UnsetType | None = UNSET
    sku: Text | UnsetType | None = UNSET
    price: Money | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    special_price: Money | UnsetType | None = UNSET
    special_price_dt_from: Timestamp | UnsetType | None = UNSET
    special_price_dt_to: Timestamp | UnsetType | None = UNSET
    url: Text | UnsetType | None = UNSET
    image_url: Text | UnsetType | None = UNSET
    is_active: bool | UnsetType | None = UNSET
    is_in_stock: bool | UnsetType | None = UNSET
    qty: Money | UnsetType | None = UNSET
    is_variant: bool | UnsetType | None = UNSET
    parent_id: Id | UnsetType | None = UNSET
    attributes: list[Attribute] | UnsetType | None = UNSET
    listings: list[Listing] | UnsetType | None = UNSET
    stores: list[Text] | UnsetType | None = UNSET
    properties: Properties | UnsetType | None = UNSET


# custom event -----------------------------------------------------------------------------------


class CustomEvent(Record, tag="custom_event"):
    #: Ometria truncates longer event types; Patron refuses them so nothing is silently changed.
    event_type: Name
    timestamp: Timestamp | UnsetType = UNSET
    identity_email: Email | UnsetType | None = UNSET
    identity_account_id: Id | UnsetType | None = UNSET
    profile_id: Id | UnsetType | None = UNSET
    properties: Properties | UnsetType | None = UNSET

    def __post_init__(self) -> None:  # after the checks
        if not any(
            v not in (UNSET, None) for v in (self.identity_email, self.identity_account_id, self.profile_id)
        ):
            raise FieldInvalid(
                "identity_email", "give at least one of identity_email, identity_account_id, profile_id"
            )


RECORD_TYPES: dict[str, type[Record]] = {
    "contact": Contact,
    "order": Order,
    "product": Product,
    "custom_event": CustomEvent,
}
AnyRecord = Contact | Order | Product | CustomEvent
#: The bodies of ``POST /v2/push`` as the OpenAPI document describes them: 1 to 100 records of one
#: type (the server validates them record by record).
_PushOf = Meta(min_length=1, max_length=MAX_RECORDS)
PushBody = tuple(Annotated[list[cls], _PushOf] for cls in RECORD_TYPES.values())  # type: ignore[valid-type]


def encode_name(cls: type[Any], name: str) -> str:
    """The JSON name of a Struct field (``collection`` -> ``@collection``)."""
    info = msgspec.structs.fields(cls)
    return next(f.encode_name for f in info if f.name == name)
