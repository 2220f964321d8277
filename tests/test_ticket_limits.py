"""A ticket holds at most ``[store] max_ticket_lines`` lines (issue 17 part 2): the
next product is refused on the lane's state path with ``ticket_full``, nothing else
changes, and the key is checked like every other. Real broker, edge and SQLite."""

from __future__ import annotations

import pytest

from edge.config import SCHEMA as EDGE_SCHEMA
from lanehub.runtime.config import ConfigError, load

SHOP_STORE_SETTINGS = {"S001": {"max_ticket_lines": 3}}
MILK = "8410000000011"


def test_a_full_ticket_refuses_the_next_product_and_keeps_everything_else(shop, lane):
    for _ in range(3):
        lane.scan(MILK)
    state = lane.scan(MILK)
    assert [w["code"] for w in state["warnings"]] == ["ticket_full"]
    assert "has 3 lines, the most this store allows" in state["warnings"][0]["message"]
    assert len(state["lines"]) == 3 and state["total"] == "3.60" and state["status"] == "open"
    assert [w["code"] for w in lane.cmd("add", sku="WINE")["warnings"]] == ["ticket_full"]
    # A customer can still be attached, a line removed and another added in its place.
    assert lane.card("CARD-0001")["customer"]["name"] == "Ann Shopper"
    lane.cmd("remove", line=1)
    state = lane.scan(MILK)
    assert state["warnings"] == [] and [line["line"] for line in state["lines"]] == [2, 3, 4]
    assert lane.cmd("close")["status"] == "closed"
    assert len(lane.scan(MILK)["lines"]) == 1  # the next ticket starts empty


@pytest.mark.parametrize("value, needle", [
    ("0", "must be at least 1"),
    ("2001", "must be at most 2,000"),
    ('"many"', "expected an integer"),
])
def test_max_ticket_lines_is_checked_like_every_key(tmp_path, value, needle):
    path = tmp_path / "edge.toml"
    path.write_text(f'[store]\nid = "S001"\nmax_ticket_lines = {value}\n')
    with pytest.raises(ConfigError) as info:
        load(path, EDGE_SCHEMA, environ={})
    message = str(info.value)
    assert f"{path}: [store] max_ticket_lines" in message and needle in message and "\n" not in message


def test_max_ticket_lines_defaults_to_1000(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[store]\nid = "S001"\n')
    assert load(path, EDGE_SCHEMA, environ={})["store"]["max_ticket_lines"] == 1000
