"""The CLI in plain words: an unknown store, SKU or role is one line naming the
value (and the SKU meant when only the case differs); empty lists say so; a
list cut at its limit says how many more there are; a config file of the wrong
kind is named as such."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from devices.config import SCHEMA as DEVICES_SCHEMA
from hq.db import HQDatabase
from hq.imports.engine import import_file
from lanehub.cli.main import main
from lanehub.domain.codes import CodeFormat
from lanehub.runtime.config import ConfigError, load

PASSWORD = "a long enough password\n"


@pytest.fixture
def hq_config(tmp_path):
    path = tmp_path / "hq.toml"
    path.write_text('[hq]\ndb = "hq.db"\n')
    return path


@pytest.fixture
def stocked(hq_config, tmp_path):
    """HQ with store S001 and the active product MILK-1L."""
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    db.add_store("S001")
    csv = tmp_path / "products.csv"
    csv.write_text("sku,description,retail_price\nMILK-1L,Whole milk,1.20\n")
    import_file(db, "products", csv, "t")
    db.close()
    return hq_config


def run(*args, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def hq(config, *args, stdin: str | None = None):
    return run("hq", *args, "-c", str(config), stdin=stdin)


def one_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- unknown stores, SKUs and roles ----------------------------------------------------------

def test_an_unknown_store_is_named_in_plain_words(stocked):
    added = hq(stocked, "users", "add", "sam", "--role", "viewer", "--store", "S999", "--password-stdin", stdin=PASSWORD)
    assert one_error(added) == "error: store S999 is not a registered store (registered: S001)"
    specific = hq(stocked, "rates", "specific", "MILK-1L", "1.00", "--store", "S999")
    assert one_error(specific) == "error: store S999 is not a registered store (registered: S001)"


def test_a_store_that_differs_only_in_case_is_named(stocked):
    added = hq(stocked, "users", "add", "sam", "--role", "viewer", "--store", "s001", "--password-stdin", stdin=PASSWORD)
    assert one_error(added) == "error: store s001 is not a registered store (did you mean S001?)"


def test_the_price_check_refuses_a_store_that_does_not_exist(stocked):
    assert one_error(hq(stocked, "price", "MILK-1L", "--store", "S777")) == (
        "error: store S777 is not a registered store (registered: S001)")
    ok = hq(stocked, "price", "MILK-1L", "--store", "S001")
    assert ok.exit_code == 0 and ok.stdout.strip() == "1.20 (retail; retail 1.20)"


def test_an_unknown_sku_says_which_one_was_meant_when_only_the_case_differs(stocked):
    assert one_error(hq(stocked, "price", "milk-1l")) == "error: sku milk-1l is not an active product (did you mean MILK-1L?)"
    assert one_error(hq(stocked, "price", "BREAD")) == "error: sku BREAD is not an active product"


def test_an_unknown_role_is_named_with_the_roles_there_are(stocked):
    added = hq(stocked, "users", "add", "sam", "--role", "viewer,bogus", "--password-stdin", stdin=PASSWORD)
    assert one_error(added) == "error: roles bogus is not a role (roles: admin, cashier, store_manager, viewer)"
    hq(stocked, "users", "add", "sam", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    edited = hq(stocked, "users", "edit", "sam", "--role", "Admin,nope")
    assert one_error(edited) == ("error: roles Admin, nope are not roles (did you mean admin?) "
                                 "(roles: admin, cashier, store_manager, viewer)")


# --- empty lists -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, said", [
    (("store", "list"), "no stores registered (add one: lanehub hq store add STORE_ID)"),
    (("rejections",), "no rejected changes"),
    (("duplicates",), "no possible duplicates to review"),
    (("customers", "list"), "no active customers"),
    (("customers", "list", "--deactivated"), "no customers"),
    (("products", "list"), "no products (import some: lanehub hq products import FILE)"),
    (("rates", "list"), "no rates"),
    (("users", "list"), "no users (add one: lanehub hq users add USERNAME --role admin)"),
    (("batch", "list"), "no batches"),
    (("batch", "list", "--status", "open"), "no open batches"),
    (("extra-fields", "list"), "no extra fields declared"),
    (("coupons", "double-uses"), "no coupon redeemed twice"),
])
def test_an_empty_list_says_so_instead_of_printing_nothing(hq_config, args, said):
    result = hq(hq_config, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == said + "\n"


# --- lists with a limit ----------------------------------------------------------------------

@pytest.fixture
def many_customers(hq_config, tmp_path):
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    for n in range(53):
        db.create_customer({"first_name": f"Person{n:02d}", "last_name": "Many"}, "t")
    db.close()
    return hq_config


def listed(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_customers_list_says_when_it_stops_at_its_limit_and_how_to_see_more(many_customers):
    lines = listed(hq(many_customers, "customers", "list"))
    assert len(lines) == 51 and lines[-1] == "... 3 more: use --limit or --all"
    assert lines[0].startswith("CUST-00001") and lines[49].startswith("CUST-00050")
    lines = listed(hq(many_customers, "customers", "list", "--limit", "5"))
    assert len(lines) == 6 and lines[-1] == "... 48 more: use --limit or --all"
    lines = listed(hq(many_customers, "customers", "list", "--all"))
    assert len(lines) == 53 and lines[-1].startswith("CUST-00053")
    lines = listed(hq(many_customers, "customers", "list", "--limit", "53"))
    assert len(lines) == 53 and "more" not in lines[-1]


def test_products_list_says_when_it_stops_at_its_limit(stocked, tmp_path):
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    csv = tmp_path / "more.csv"
    csv.write_text("sku,description,retail_price\n" + "".join(f"P{n},Thing {n},1.00\n" for n in range(3)))
    import_file(db, "products", csv, "t")
    db.close()
    lines = listed(hq(stocked, "products", "list", "--limit", "2"))
    assert len(lines) == 3 and lines[-1] == "... 2 more: use --limit or --all"
    assert len(listed(hq(stocked, "products", "list", "--all"))) == 4


def test_a_limit_below_one_is_refused(many_customers):
    result = hq(many_customers, "customers", "list", "--limit", "0")
    assert result.exit_code == 2 and "--limit" in result.output


# --- a config file of the wrong kind -----------------------------------------------------------

def test_an_hq_config_given_to_an_edge_command_is_named_as_such(hq_config):
    result = run("edge", "status", "-c", str(hq_config))
    assert result.exit_code == 2
    assert result.output.strip() == (f"lanehub: config error: {hq_config}: this is an HQ config (hq.toml), not a "
                                     "store's edge config (edge.toml): give this command the right file with -c")


def test_an_edge_config_given_to_an_hq_command_is_named_as_such(tmp_path):
    edge = tmp_path / "edge.toml"
    edge.write_text('[store]\nid = "S001"\ndb = "edge.db"\n[hq]\nhost = "hq.example.com"\n')
    result = run("hq", "store", "list", "-c", str(edge))
    assert result.exit_code == 2
    assert result.output.strip() == (f"lanehub: config error: {edge}: this is a store's edge config (edge.toml), "
                                     "not an HQ config (hq.toml): give this command the right file with -c")


def test_an_hq_config_read_as_a_devices_config_is_named_as_such(hq_config):
    with pytest.raises(ConfigError, match=r"this is an HQ config \(hq.toml\), not a devices config \(devices.toml\)"):
        load(hq_config, DEVICES_SCHEMA, environ={})


def test_a_mistyped_key_in_the_right_kind_of_file_still_names_the_key(tmp_path):
    path = tmp_path / "hq.toml"
    path.write_text('[hq]\ndb = "hq.db"\n[web]\nprot = 8800\n')
    result = run("hq", "store", "list", "-c", str(path))
    assert result.exit_code == 2 and result.output.strip() == f"lanehub: config error: {path}: [web] prot: unknown key"


def test_the_edges_empty_lists_say_so(tmp_path):
    edge = tmp_path / "edge.toml"
    edge.write_text('[store]\nid = "S001"\ndb = "edge.db"\n')
    assert run("edge", "rejections", "-c", str(edge)).output.strip() == "no rejected changes"
    assert run("edge", "customers", "search", "nobody", "-c", str(edge)).output.strip() == "no customers found"
