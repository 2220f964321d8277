"""Extra users on a chain's HQ broker, for tests that act beside running services.

The HQ broker ties a client's id to its user name (``use_username_as_clientid``),
so a test client logged in as ``hq`` or ``S001`` would take the running HQ's or
edge's session. These users have the same rights under names of their own. They
are appended to the files HQ wrote (HQ rewrites them only when a store is added).
"""

from __future__ import annotations

import itertools

from lanehub.protocol import topics
from lanehub.protocol.acl import broker_password_hash, new_password

_names = itertools.count(1)


def _add_user(chain, name: str, rights: list[str]) -> str:
    password = new_password()
    broker = chain.hq_broker
    with open(broker.passwd_path, "a") as fh:
        fh.write(f"{name}:{broker_password_hash(password)}\n")
    with open(broker.acl_path, "a") as fh:
        fh.write("\n" + "\n".join([f"user {name}", *rights]) + "\n")
    broker.reload()
    return password


def hq_operator(chain, mqtt):
    """A client with HQ's rights (reads and writes every sync topic, HQ's error topic)."""
    name = f"operator{next(_names)}"
    password = _add_user(chain, name, [f"topic readwrite {topics.SYNC}/#", f"topic readwrite {topics.error('hq')}"])
    return mqtt(chain.hq_broker.port, name, password)


def store_twin(chain, mqtt, store: str):
    """A client with ``store``'s rights, while that store's own edge stays connected."""
    name = f"{store}-twin{next(_names)}"
    password = _add_user(chain, name, [
        f"topic write {topics.sync_up(store)}", f"topic write {topics.sync_req(store)}",
        f"topic write {topics.sync_status(store)}", f"topic read {topics.sync_down()}",
        f"topic read {topics.sync_store(store)}", f"topic read {topics.sync_store(store)}/#"])
    return mqtt(chain.hq_broker.port, name, password)
