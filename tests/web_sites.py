"""The two web sites for page and API tests, without brokers: ``sites`` gives
HQ's and store S001's Flask apps over a fresh HQ database and its store replica,
with users of every role (all with ``PASSWORD``); ``csrf`` and ``login`` drive a
test client through the login form."""

from __future__ import annotations

import re

import pytest
from postgres import HQ_BACKENDS

from edge.db import EdgeDatabase
from edge.web.app import create_app as store_app
from hq.db import HQDatabase
from hq.users import HQUsers
from hq.web.app import create_app as hq_app
from lanehub.domain.codes import CodeFormat

PASSWORD = "correct horse battery"


def config_for(tmp_path, site):
    if site == "hq":
        return {"hq": {"db": str(tmp_path / "hq.db")}, "codes": {"prefix": "CUST-", "width": 5, "block_size": 100},
                "web": {"secure_cookies": False}}
    # The store's config as `lanehub edge run` loads it: every key, with its default.
    from edge.config import load_config as load_edge_config

    path = tmp_path / "edge.toml"
    path.write_text(f'[store]\nid = "S001"\ndb = "{tmp_path / "S001.db"}"\n')
    return load_edge_config(path)


@pytest.fixture(params=HQ_BACKENDS)
def sites(request, tmp_path):
    """Both Flask apps on their databases, without brokers; HQ's on each backend in turn."""
    target = str(tmp_path / "hq.db") if request.param == "sqlite" else request.getfixturevalue("postgres_hq_db")
    hq = HQDatabase(target, CodeFormat())
    hq.add_store("S001")
    users = HQUsers(hq)
    hq_users = [("admin", "admin", ""), ("clerk", "cashier", ""), ("viewer", "viewer", ""), ("till", "cashier", "S001")]
    for name, role, store in hq_users:
        users.add(name, PASSWORD, [role], "t", name=name.title(), store=store)
    users.add_role("nobody", ["customers.view"], "t")
    users.add("powerless", PASSWORD, ["nobody"], "t")  # customers.view only
    hq.create_customer({"first_name": "Ann", "last_name": "<script>alert(1)</script>"}, "t")
    # The store's replica gets HQ's log, as replication would deliver it.
    edge = EdgeDatabase(tmp_path / "S001.db", "S001")
    edge.set_codes("CUST-", 5)
    edge.apply_down(hq.changes_since(1, 10_000))
    edge.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot_done', '1')")
    edge.add_block("lease-1", 500, 599)
    hq_config, store_config = config_for(tmp_path, "hq"), config_for(tmp_path, "store")
    hq_config["hq"]["db"] = target
    apps = {
        "hq": hq_app(hq_config, open_db=lambda: HQDatabase(target, CodeFormat())),
        "store": store_app(store_config, open_db=lambda: EdgeDatabase(tmp_path / "S001.db", "S001")),
    }
    for app in apps.values():
        app.config["TESTING"] = True
    return apps, hq, edge


def csrf(client, path="/login") -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def login(client, username, password=PASSWORD):
    token = csrf(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})
