"""Who receives each entity's changes from HQ (docs/protocol.md §5, D45).

Every change HQ logs has an **audience**, kept with it in HQ's log:

- ``EVERY_STORE`` (the audience ``""``): customers, cards, the catalogue,
  rates, users, coupons, consents, addresses, purchase summaries... A store
  needs them to serve its lanes while HQ is away.
- ``ORIGIN_STORE``: the record's own store only (a sale: the store whose till
  closed it), besides HQ. The audience is that store's id. A chain of 1,000
  stores would otherwise push every sale of every store into every store.

What a store does not need reaches it as a *covered* seq: a down batch says
which seqs it covers (``first`` .. ``through``), so skipping a change is not a
gap, and names the seqs held back for one store (``held``) when that store
must fetch them (a sale of S001 tracked to a customer at HQ): that store
catches up from there, and HQ's catch-up and snapshot answers are filtered
for the asking store, its own records included.

Everything of the purchase history a store needs offline for other stores'
sales comes as the customer's **purchase summary** (every store).
"""

from __future__ import annotations

from typing import Any

EVERY_STORE = "every_store"
ORIGIN_STORE = "origin_store"

# entity -> route; entities not listed go to every store.
ROUTES: dict[str, str] = {
    "sale": ORIGIN_STORE,
}

# The field of an ORIGIN_STORE record that names its store.
STORE_FIELD: dict[str, str] = {
    "sale": "store",
}


def route_of(entity: str) -> str:
    return ROUTES.get(entity, EVERY_STORE)


def audience(entity: str, record: dict[str, Any] | None) -> str:
    """The audience of a change to ``record`` (as HQ holds it after the change):
    "" for every store, else the one store that receives it."""
    if route_of(entity) == EVERY_STORE or record is None:
        return ""
    return str(record.get(STORE_FIELD[entity], "") or "")


def for_store(audience_of_change: str, store: str) -> bool:
    """Whether a change with this audience goes to ``store``."""
    return audience_of_change in ("", store)
