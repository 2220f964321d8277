"""Importers: normalize → key → diff → create/update/deactivate, from CSV and
SQL sources, with dry-run, caps and idempotence; field ownership; export back."""

from __future__ import annotations

import csv
import re
import sqlite3
import uuid
from pathlib import Path

import pytest
from test_api import call
from web_sites import csrf, login

from edge.db import EdgeDatabase
from hq.config import load_config
from hq.db import HQDatabase
from hq.fields import sync_field_rules
from hq.imports.engine import Caps, ImportAborted, ImportSpec, run_import
from hq.imports.export import export_changes
from hq.imports.sources import CsvSource, SqlSource, open_source
from hq.imports.targets import TARGETS
from hq.users import HQUsers
from lanehub.chain.processes import run_lanehub
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ValidationError
from lanehub.runtime.config import ConfigError, dump_toml

POS_CONFIG = {
    "source": "pos",
    "columns": {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "MAIL": "email",
                "CITY": "city", "TAXID": "tax_id"},
    "owned": ["first_name", "last_name", "city", "tax_id"],
    "export": ["email", "phone"],
    "deactivate_missing": True,
}
POS_ROWS = [
    {"NUM": "1001", "NAME": "Ana", "SURNAME": "García", "MAIL": "ana@example.com", "CITY": "Madrid", "TAXID": "X1"},
    {"NUM": "1002", "NAME": "Luis", "SURNAME": "Pérez", "MAIL": "", "CITY": "Sevilla", "TAXID": ""},
    {"NUM": "1003", "NAME": "Eva", "SURNAME": "Ruiz", "MAIL": "eva@example.com", "CITY": "León", "TAXID": "X3"},
]


def write_csv(path: Path, rows: list[dict], delimiter: str = ";") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_config(tmp_path: Path, imports: dict, db: str | None = None) -> Path:
    path = tmp_path / "hq.toml"
    path.write_text(dump_toml({"hq": {"db": db or str(tmp_path / "hq.db")}, "import": imports}))
    return path


@pytest.fixture
def hq(hq_target, tmp_path):
    db = HQDatabase(hq_target, CodeFormat())
    yield db
    db.close()


def customers_import(hq, tmp_path, rows=POS_ROWS, **kwargs):
    config = load_config(write_config(tmp_path, {"customers": POS_CONFIG}))
    target = TARGETS["customers"](hq)
    spec = ImportSpec.from_config(config, "customers", target)
    source = CsvSource(write_csv(tmp_path / "pos.csv", rows))
    return run_import(target, spec, source, "import:pos", **kwargs), spec, target


def imported_changes(hq, after: int) -> list:
    return [c for c in hq.changes_since(after + 1, 10_000) if c.entity == "customer"]


def test_dry_run_changes_nothing_and_reports_exactly_what_the_real_run_does(hq, tmp_path):
    customers_import(hq, tmp_path, POS_ROWS[:2])
    head = hq.head()
    rows = [dict(POS_ROWS[0], CITY="Toledo"), POS_ROWS[2]]  # 1001 moved, 1002 gone, 1003 new
    planned, _, _ = customers_import(hq, tmp_path, rows, dry_run=True)
    assert hq.head() == head
    assert planned.summary() == "pos -> lanehub: added 1; updated 1; deactivated 1"
    done, _, _ = customers_import(hq, tmp_path, rows)
    assert [c.describe() for c in done.changes] == [c.describe() for c in planned.changes]
    written = imported_changes(hq, head)
    by_key = {hq.replica.get("customer", c.key)["external_id"]: c.fields for c in written}
    assert by_key["1001"]["city"] == "Toledo" and set(by_key["1001"]) == {"city", "updated_at", "updated_by"}
    assert by_key["1002"]["active"] is False
    assert by_key["1003"]["first_name"] == "Eva" and by_key["1003"]["code"].startswith("CUST-")
    assert len(written) == 3 and all(c.by == "import:pos" for c in written)


@pytest.mark.parametrize("cap, expected", [
    ({"create": 2}, "would create 3 record(s), more than --max-create 2"),
    ({"update": 0}, "would update 1 record(s), more than --max-update 0"),
    ({"deactivate": 0}, "would deactivate 1 record(s), more than --max-deactivate 0"),
])
def test_caps_abort_with_nothing_committed(hq, tmp_path, cap, expected):
    if "create" not in cap:
        customers_import(hq, tmp_path, POS_ROWS[:2])
        rows = [dict(POS_ROWS[0], CITY="Toledo")]
    else:
        rows = POS_ROWS
    head, count = hq.head(), hq.replica.count("customer")
    with pytest.raises(ImportAborted, match=re.escape(expected)):
        customers_import(hq, tmp_path, rows, caps=Caps(**cap))
    assert (hq.head(), hq.replica.count("customer")) == (head, count)


def test_a_second_import_changes_nothing(hq, tmp_path):
    first, _, _ = customers_import(hq, tmp_path)
    head = hq.head()
    second, _, _ = customers_import(hq, tmp_path)
    assert first.summary() == "pos -> lanehub: added 3; updated 0; deactivated 0"
    assert second.summary() == "pos -> lanehub: added 0; updated 0; deactivated 0" and second.unchanged == 3
    assert hq.head() == head


def test_an_import_never_overwrites_lanehub_owned_fields(hq, tmp_path):
    _, spec, target = customers_import(hq, tmp_path)
    sync_field_rules(hq, spec, target, "t")
    ana = hq.find_customer("1001") or hq.conn.execute("SELECT id FROM customers WHERE external_id = '1001'").fetchone()
    ana = hq.replica.get("customer", ana["id"])
    hq.update_customer(ana["id"], {"email": "ana.new@example.com", "notes": "VIP", "rate": ""}, "clerk")
    plan, _, _ = customers_import(hq, tmp_path, [dict(POS_ROWS[0], CITY="Toledo", MAIL="old@example.com"), *POS_ROWS[1:]])
    record = hq.replica.get("customer", ana["id"])
    assert record["email"] == "ana.new@example.com" and record["notes"] == "VIP"  # lanehub's own
    assert record["city"] == "Toledo"  # the source's
    assert [c.describe() for c in plan.changes] == ["update 1001: city: 'Madrid' -> 'Toledo'"]


def test_records_the_source_no_longer_has_are_deactivated_only_when_asked(hq, tmp_path):
    customers_import(hq, tmp_path)
    kept, _, _ = customers_import(hq, tmp_path, POS_ROWS[:2], deactivate_missing=False)
    assert kept.count("deactivate") == 0
    gone, _, _ = customers_import(hq, tmp_path, POS_ROWS[:2])
    assert gone.count("deactivate") == 1
    eva = hq.conn.execute("SELECT id, active FROM customers WHERE external_id = '1003'").fetchone()
    assert eva["active"] == 0  # deactivated, never deleted
    back, _, _ = customers_import(hq, tmp_path, POS_ROWS, deactivate_missing=False)
    assert back.summary() == "pos -> lanehub: added 0; updated 0; deactivated 0"  # 'active' is not owned here


def test_invalid_rows_abort_the_import_unless_skipped(hq, tmp_path):
    rows = [*POS_ROWS, {"NUM": "1004", "NAME": "Bad", "SURNAME": "", "MAIL": "not-mail", "CITY": "", "TAXID": ""},
            dict(POS_ROWS[0], NAME="Twice")]
    with pytest.raises(ImportAborted) as caught:
        customers_import(hq, tmp_path, rows)
    assert hq.replica.count("customer") == 0
    invalid = {(where, key): errors for where, key, errors in caught.value.plan.invalid}
    assert invalid[("pos.csv line 5", "1004")] == {"email": "is not a valid e-mail address", "last_name": "is required"}
    assert "appears twice" in invalid[("pos.csv line 6", "1001")]["external_id"]
    plan, _, _ = customers_import(hq, tmp_path, rows, skip_invalid=True)
    assert plan.count("create") == 3 and len(plan.invalid) == 2


def test_a_sql_database_is_a_source(hq, tmp_path):
    pos = sqlite3.connect(tmp_path / "pos.db")
    pos.execute("CREATE TABLE clients (NUM INTEGER, NAME TEXT, SURNAME TEXT, MAIL TEXT, CITY TEXT, TAXID TEXT, gone INT)")
    pos.executemany("INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(int(r["NUM"]), r["NAME"], r["SURNAME"], r["MAIL"] or None, r["CITY"], r["TAXID"], 0) for r in POS_ROWS]
                    + [(9, "Old", "Client", None, "", "", 1)])
    pos.commit()
    pos.close()
    config = load_config(write_config(tmp_path, {"customers": POS_CONFIG}))
    target = TARGETS["customers"](hq)
    spec = ImportSpec.from_config(config, "customers", target)
    source = open_source(f"sqlite:///{tmp_path / 'pos.db'}", "SELECT * FROM clients WHERE gone = 0", "customers")
    assert isinstance(source, SqlSource) and source.count() == 3
    plan = run_import(target, spec, source, "import:pos")
    assert plan.summary() == "pos -> lanehub: added 3; updated 0; deactivated 0"
    luis = hq.conn.execute("SELECT first_name, email FROM customers WHERE external_id = '1002'").fetchone()
    assert tuple(luis) == ("Luis", "")  # an INTEGER key and a NULL e-mail, normalized
    assert run_import(target, spec, source, "import:pos").unchanged == 3


def test_a_postgresql_database_is_a_source(hq, tmp_path, postgres):
    import psycopg

    url = postgres.url
    table = "pos_clients_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres.conninfo, autocommit=True) as pg:
        pg.execute(f"CREATE TABLE {table} (num INTEGER, name TEXT, surname TEXT, city TEXT)")
        try:
            for r in POS_ROWS:
                pg.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", (int(r["NUM"]), r["NAME"], r["SURNAME"], r["CITY"]))
            config = load_config(write_config(tmp_path, {"customers": {
                "source": "crm", "columns": {"num": "external_id", "name": "first_name", "surname": "last_name",
                                             "city": "city"}}}))
            target = TARGETS["customers"](hq)
            spec = ImportSpec.from_config(config, "customers", target)
            plan = run_import(target, spec, open_source(url, "", table), "import:crm")
            assert plan.summary() == "crm -> lanehub: added 3; updated 0; deactivated 0"
            assert hq.conn.execute("SELECT city FROM customers WHERE external_id = '1003'").fetchone()[0] == "León"
            # Export back into the same database.
            eva = hq.conn.execute("SELECT id, code FROM customers WHERE external_id = '1003'").fetchone()
            hq.update_customer(eva["id"], {"email": "eva@till.example"}, "clerk")
            out = ImportSpec("customers", "crm", spec.columns, spec.owned, ("email",), export_to=url,
                             export_table=table + "_out")
            assert export_changes(hq, out).endswith(f"exported 1 customers to table {table}_out")
            rows = pg.execute(f"SELECT code, external_id, email, changed_fields FROM {table}_out").fetchall()
            assert rows == [(eva["code"], "1003", "eva@till.example", "email")]
        finally:
            pg.execute(f"DROP TABLE {table}")
            pg.execute(f"DROP TABLE IF EXISTS {table}_out")


def test_products_and_rates_import_through_the_same_engine(hq, tmp_path):
    path = write_config(tmp_path, {})
    config = load_config(path)
    products = TARGETS["products"](hq)
    spec = ImportSpec.from_config(config, "products", products)
    rows = [{"sku": "MILK", "description": "Milk 1L", "retail_price": "1.2", "tax_rate": "", "active": "yes",
             "barcodes": "8410000000011"},
            {"sku": "BREAD", "description": "Bread", "retail_price": "0.90", "tax_rate": "4", "active": "",
             "barcodes": ""}]
    plan = run_import(products, spec, CsvSource(write_csv(tmp_path / "p.csv", rows, ",")), "import:csv")
    assert plan.summary() == "csv -> lanehub: added 2; updated 0; deactivated 0"
    assert hq.conn.execute("SELECT retail_price FROM products WHERE sku = 'MILK'").fetchone()[0] == "1.20"
    rows[0]["barcodes"] = "8410000000011|8410000000028"
    again = run_import(products, spec, CsvSource(write_csv(tmp_path / "p.csv", rows, ",")), "import:csv",
                       deactivate_missing=True)
    assert [c.describe() for c in again.changes] == ["update MILK: barcodes: '8410000000011' -> '8410000000011|8410000000028'"]
    assert hq.conn.execute("SELECT count(*) FROM barcodes WHERE active = 1").fetchone()[0] == 2

    rates = TARGETS["rates"](hq)
    rate_spec = ImportSpec.from_config(config, "rates", rates)
    rate_rows = [{"code": "vip", "name": "VIP", "start": "2026-01-01", "end": "", "status": "active"},
                 {"code": "STAFF", "name": "Staff", "start": "2026-01-01", "end": "", "status": "active"}]
    run_import(rates, rate_spec, CsvSource(write_csv(tmp_path / "r.csv", rate_rows, ",")), "import:csv")
    plan = run_import(rates, rate_spec, CsvSource(write_csv(tmp_path / "r.csv", rate_rows[:1], ",")), "import:csv",
                      deactivate_missing=True)
    assert [c.describe() for c in plan.changes] == ["deactivate STAFF: status: 'active' -> 'disabled'"]
    assert hq.conn.execute("SELECT status FROM rates WHERE code = 'VIP'").fetchone()[0] == "active"


@pytest.mark.parametrize("imports, message", [
    ({"customers": dict(POS_CONFIG, owned=["notes"])}, "owned: notes stays lanehub's own"),
    ({"customers": dict(POS_CONFIG, columns={"NUM": "external_id", "X": "code"})}, "X -> 'code' is not an importable"),
    ({"customers": dict(POS_CONFIG, columns={"NAME": "first_name"})}, "no column maps to the key field external_id"),
    ({"customers": dict(POS_CONFIG, export=["city"])}, "export: 'city' must be a customer field lanehub owns"),
    ({"customers": dict(POS_CONFIG, columns={"NUM": "external_id", "T": "extra.tier"})},
     "T -> 'extra.tier' is not a declared extra field \\(lanehub hq extra-fields add tier LABEL\\)"),
])
def test_a_bad_import_config_names_file_and_key(tmp_path, hq, imports, message):
    config = load_config(write_config(tmp_path, imports))
    with pytest.raises(ConfigError, match=message) as caught:
        ImportSpec.from_config(config, "customers", TARGETS["customers"](hq))
    assert str(caught.value).startswith(f"{tmp_path / 'hq.toml'}: [import.customers]")


def test_owned_fields_are_refused_on_every_write_path_and_lanehub_fields_stay_editable(hq, tmp_path):
    _, spec, target = customers_import(hq, tmp_path)
    sync_field_rules(hq, spec, target, "t")
    ana = hq.replica.get("customer", hq.conn.execute("SELECT id FROM customers WHERE external_id = '1001'").fetchone()[0])
    with pytest.raises(ValidationError) as caught:
        hq.update_customer(ana["id"], {"city": "Toledo", "last_name": "García"}, "clerk")
    assert caught.value.errors == {"city": "comes from pos; change it there"}  # an unchanged value is not a change
    assert hq.update_customer(ana["id"], {"notes": "likes jazz", "rate": "", "email": "a@example.com"}, "c")["notes"]
    # A customer born in lanehub is not the source's: all its fields stay editable.
    own = hq.create_customer({"first_name": "Own", "last_name": "Customer", "city": "Vigo"}, "c")
    assert hq.update_customer(own["id"], {"city": "Lugo"}, "c")["city"] == "Lugo"
    with pytest.raises(ValidationError, match="external_id cannot be set here"):
        hq.update_customer(own["id"], {"external_id": "77"}, "c")
    # The rules replicate: a store refuses the same edit offline.
    edge = EdgeDatabase(tmp_path / "S001.db", "S001")
    edge.apply_down(hq.changes_since(1, 10_000))
    with pytest.raises(ValidationError, match="city comes from pos"):
        edge.update_customer(ana["id"], {"city": "Toledo"}, "till")
    assert edge.update_customer(ana["id"], {"phone": "+34 600 000 000"}, "till")["phone"]
    from edge.lane.register import register_op
    from lanehub.protocol.lane import CustomerRequest

    at_lane = register_op(edge, CustomerRequest(op="update", ref=ana["code"], customer={"city": "Toledo"}), "L1",
                          lambda *_: None)
    assert not at_lane.ok and at_lane.errors == {"city": "comes from pos; change it there"}
    # And HQ refuses a store's change that slipped through (an old edge, a hand-made message).
    hq.add_store("S001")
    change = {"id": str(uuid.uuid4()), "entity": "customer", "key": ana["id"], "origin": "S001", "hlc": hq.clock.now(),
              "by": "till", "fields": {"city": "Toledo"}}
    outcome = hq.apply_store_changes("S001", [change])[0]
    assert not outcome.ok and outcome.reason == "city comes from pos; change it there"


def test_owned_fields_are_read_only_in_the_pages_and_the_api(sites, tmp_path):
    apps, hq, edge = sites
    _, spec, target = customers_import(hq, tmp_path)
    sync_field_rules(hq, spec, target, "t")
    token = HQUsers(hq).new_token("admin", "t")
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    code = hq.conn.execute("SELECT code FROM customers WHERE external_id = '1001'").fetchone()[0]
    for site, app in apps.items():
        response = call(app, "PATCH", f"/api/v1/customers/{code}", token, {"city": "Toledo"})
        assert response.status_code == 422, site
        assert response.get_json()["fields"] == {"city": "comes from pos; change it there"}
        assert call(app, "PATCH", f"/api/v1/customers/{code}", token, {"notes": f"from {site}"}).status_code == 200
        got = call(app, "GET", f"/api/v1/customers/{code}", token).get_json()
        assert got["owned_fields"] == {f: "pos" for f in ("city", "first_name", "last_name", "tax_id")}
        client = app.test_client()
        login(client, "admin")
        page = client.get(f"/customers/{code}/edit").get_data(as_text=True)
        assert "From pos: change it there." in page and 'name="city"' not in page and 'name="notes"' in page
        token_ = csrf(client, f"/customers/{code}/edit")
        saved = client.post(f"/customers/{code}/edit", data={"csrf_token": token_, "first_name": "Ana", "last_name": "García",
                                                             "notes": "edited", "payment_status": "valid", "status": "open"})
        assert saved.status_code == 302, site
        forged = client.post(f"/customers/{code}/edit", data={"csrf_token": token_, "city": "Toledo", "notes": "x",
                                                              "payment_status": "valid", "status": "open"})
        assert forged.status_code == 422 and "comes from pos" in forged.get_data(as_text=True)


def test_exported_fields_are_written_back_as_a_csv_drop_and_to_a_sql_table(hq, tmp_path):
    _, spec, target = customers_import(hq, tmp_path)
    drop = tmp_path / "drop"
    config = load_config(write_config(tmp_path, {"customers": dict(POS_CONFIG, export_to=str(drop))}))
    spec = ImportSpec.from_config(config, "customers", target)
    assert export_changes(hq, spec) == "lanehub -> pos: exported 0 customers"  # the import itself is not echoed
    ana = hq.conn.execute("SELECT id, code FROM customers WHERE external_id = '1001'").fetchone()
    hq.update_customer(ana["id"], {"email": "ana@new.example", "notes": "not exported"}, "clerk")
    hq.update_customer(ana["id"], {"phone": "+34 911 000 000"}, "clerk")
    result = export_changes(hq, spec)
    files = list(drop.glob("customers-*.csv"))
    assert result.startswith("lanehub -> pos: exported 1 customers to") and len(files) == 1
    rows = list(csv.DictReader(files[0].open()))
    assert rows == [{"code": ana["code"], "external_id": "1001", "email": "ana@new.example", "phone": "+34 911 000 000",
                     "changed_fields": "email,phone", "last_seq": str(hq.head())}]
    assert export_changes(hq, spec) == "lanehub -> pos: exported 0 customers"
    assert not list(drop.glob(".*.tmp"))
    assert files[0].stat().st_mode & 0o777 == 0o640  # personal data: not world-readable

    url = f"sqlite:///{tmp_path / 'pos.db'}"
    sql_spec = ImportSpec.from_config(load_config(write_config(tmp_path, {"customers": dict(
        POS_CONFIG, export_to=url, export_table="lanehub_out")})), "customers", target)
    hq.meta.set("export_seq:customers", 0)  # a fresh consumer: everything since the start
    assert export_changes(hq, sql_spec).endswith("exported 1 customers to table lanehub_out")
    hq.meta.set("export_seq:customers", 0)  # the table's own cursor stops a second delivery
    assert export_changes(hq, sql_spec) == "lanehub -> pos: exported 0 customers to table lanehub_out"
    pos = sqlite3.connect(tmp_path / "pos.db")
    assert pos.execute("SELECT code, email, changed_fields FROM lanehub_out").fetchall() == [
        (ana["code"], "ana@new.example", "email,phone")]


def test_the_cli_prints_each_change_on_a_dry_run_and_the_summary_line(tmp_path):
    config = write_config(tmp_path, {"customers": POS_CONFIG})
    source = write_csv(tmp_path / "pos.csv", POS_ROWS)
    dry = run_lanehub("hq", "import", "customers", str(source), "--dry-run", "-c", str(config))
    assert "create 1001: external_id: '' -> '1001'; first_name: '' -> 'Ana'" in dry.stdout.replace("None", "''")
    assert dry.stdout.strip().endswith("dry run: pos -> lanehub: added 3; updated 0; deactivated 0 (0 unchanged)")
    real = run_lanehub("hq", "import", "customers", str(source), "--progress", "-c", str(config))
    assert real.stdout.strip() == "pos -> lanehub: added 3; updated 0; deactivated 0 (0 unchanged)"
    assert "Reading customers" in real.stderr and "Writing 3 changes" in real.stderr
    capped = run_lanehub("hq", "import", "customers", str(write_csv(tmp_path / "pos.csv", POS_ROWS[:1])),
                         "--max-deactivate", "1", "-c", str(config), check=False)
    assert capped.returncode == 1 and "would deactivate 2 record(s), more than --max-deactivate 1" in capped.stderr
    fields = run_lanehub("hq", "fields", "customer", "-c", str(config))
    assert "customer.city: owned by pos" in fields.stdout and "customer.email: lanehub's, exported" in fields.stdout
    missing = run_lanehub("hq", "import", "customers", str(tmp_path / "nope.csv"), "-c", str(config), check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_imported_customers_reach_a_store_replica_through_real_brokers(make_chain, tmp_path):
    from helpers import customer_by, db_query, edge_db, wait_until

    chain = make_chain(stores=("S001",), hq_settings={"import": {"customers": POS_CONFIG}})
    source = write_csv(tmp_path / "pos.csv", POS_ROWS)
    result = chain.hq_cli("import", "customers", str(source))
    assert result.stdout.strip() == "pos -> lanehub: added 3; updated 0; deactivated 0 (0 unchanged)"
    store = edge_db(chain, "S001")
    ana = wait_until(lambda: customer_by(store, "external_id", "1001"), message="imported customer at the store")
    assert (ana["first_name"], ana["city"], ana["code"].startswith("CUST-")) == ("Ana", "Madrid", True)
    # HQ read [import.customers] at start: the store knows the rules without any import.
    rules = {r["field"]: r["owner"] for r in db_query(store, "SELECT field, owner FROM field_rules WHERE active = 1")}
    assert rules["city"] == "pos" and rules["email"] == ""
    refused = chain.edge_cli("S001", "customers", "edit", ana["code"], "--city", "Toledo", check=False)
    assert refused.returncode == 1 and "city comes from pos; change it there" in refused.stderr
    chain.edge_cli("S001", "customers", "edit", ana["code"], "--notes", "asks for paper bags")
    # A later import's update and deactivation reach the store too.
    chain.hq_cli("import", "customers", str(write_csv(source, [dict(POS_ROWS[0], CITY="Toledo"), *POS_ROWS[1:2]])))
    wait_until(lambda: customer_by(store, "external_id", "1001")["city"] == "Toledo", message="update at the store")
    wait_until(lambda: customer_by(store, "external_id", "1003")["active"] == 0, message="deactivation at the store")
    assert customer_by(store, "external_id", "1001")["notes"] == "asks for paper bags"


def test_rate_fields_owned_by_the_source_are_refused_in_the_rates_pages_path(hq, tmp_path):
    from hq.catalogue import HQCatalogue

    config = load_config(write_config(tmp_path, {"rates": {"source": "erp", "owned": ["name", "end"]}}))
    rates = TARGETS["rates"](hq)
    spec = ImportSpec.from_config(config, "rates", rates)
    run_import(rates, spec, CsvSource(write_csv(tmp_path / "r.csv", [{"code": "VIP", "name": "VIP", "end": ""}], ",")),
               "import:erp")
    sync_field_rules(hq, spec, rates, "t")
    with pytest.raises(ValidationError, match="name comes from erp"):
        HQCatalogue(hq).put_rate("VIP", {"name": "Gold"}, "clerk")
    assert HQCatalogue(hq).put_rate("VIP", {"start": "2026-02-01"}, "clerk")["start"] == "2026-02-01"


def test_the_rate_page_shows_owned_fields_read_only_and_refuses_a_forged_one(sites, tmp_path):
    apps, hq, _ = sites
    config = load_config(write_config(tmp_path, {"rates": {"source": "erp", "owned": ["name"]}}))
    rates = TARGETS["rates"](hq)
    spec = ImportSpec.from_config(config, "rates", rates)
    run_import(rates, spec, CsvSource(write_csv(tmp_path / "r.csv", [{"code": "VIP", "name": "VIP"}], ",")), "import:erp")
    sync_field_rules(hq, spec, rates, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    page = client.get("/rates/VIP").get_data(as_text=True)
    assert "From erp: change it there." in page and 'name="name"' not in page and 'name="end"' in page
    token = csrf(client, "/rates/VIP")
    saved = client.post("/rates/VIP", data={"csrf_token": token, "action": "header", "start": "2026-01-01", "end": "",
                                            "status": "active"})
    assert saved.status_code == 302
    forged = client.post("/rates/VIP", data={"csrf_token": token, "action": "header", "name": "Gold"})
    assert forged.status_code == 422 and "name comes from erp" in forged.get_data(as_text=True).replace("Name ", "name ")


def test_a_store_edit_of_an_exported_field_reaches_the_pos_drop(make_chain, tmp_path):
    from helpers import customer_by, edge_db, wait_until

    drop = tmp_path / "pos-drop"
    chain = make_chain(stores=("S001",), hq_settings={"import": {"customers": dict(
        POS_CONFIG, export_to=str(drop), export_interval=1.0)}})
    chain.hq_cli("import", "customers", str(write_csv(tmp_path / "pos.csv", POS_ROWS)))
    ana = wait_until(lambda: customer_by(edge_db(chain, "S001"), "external_id", "1001"), message="Ana at the store")
    chain.edge_cli("S001", "customers", "edit", ana["code"], "--email", "ana@till.example")

    def exported():
        rows = [row for path in sorted(drop.glob("customers-*.csv")) for row in csv.DictReader(path.open())]
        return rows or None

    rows = wait_until(exported, 30, 0.2, message="the store's edit in the POS drop")
    assert [(r["code"], r["external_id"], r["email"], r["changed_fields"]) for r in rows] == [
        (ana["code"], "1001", "ana@till.example", "email")]


def test_existing_records_read_only_the_owned_columns_and_merged_ones_are_not_recreated(hq, tmp_path):
    from hq.merge import merge_customers

    customers_import(hq, tmp_path)
    # The POS now has a bad e-mail for Ana: e-mail only seeds new customers here, so it is not read.
    plan, _, _ = customers_import(hq, tmp_path, [dict(POS_ROWS[0], MAIL="not-mail"), *POS_ROWS[1:]])
    assert plan.summary() == "pos -> lanehub: added 0; updated 0; deactivated 0" and not plan.invalid
    ids = {r["external_id"]: r["id"] for r in hq.conn.execute("SELECT id, external_id FROM customers")}
    merge_customers(hq, ids["1002"], ids["1003"], "clerk")  # a person decided 1003 is 1002
    again, _, _ = customers_import(hq, tmp_path)
    assert again.count("create") == 0 and hq.replica.count("customer") == 3


@pytest.mark.parametrize("source, query, message", [
    ("sqlite:///{tmp}/pos.db", "SELECT * FROM no_such_table", "cannot read the source: sqlite:///"),
    ("nosuchdriver://user:secret@host/db", "", "cannot use nosuchdriver://user:***@host/db"),
])
def test_a_source_that_cannot_be_read_is_one_clear_line_and_no_password(tmp_path, source, query, message):
    sqlite3.connect(tmp_path / "pos.db").close()
    config = write_config(tmp_path, {"customers": POS_CONFIG})
    result = run_lanehub("hq", "import", "customers", source.format(tmp=tmp_path), *(["--query", query] if query else []),
                         "-c", str(config), check=False)
    assert result.returncode == 1 and message in result.stderr and "secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_hq_refuses_to_start_with_a_bad_import_section(tmp_path):
    config = write_config(tmp_path, {"customers": dict(POS_CONFIG, owned=["rate"])})
    result = run_lanehub("hq", "run", "-c", str(config), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"lanehub: config error: {config}: [import.customers] owned: rate stays "
                                      "lanehub's own (edited in lanehub, never imported)")


def test_keyed_by_tax_id_a_first_import_links_the_customers_lanehub_already_has(hq, tmp_path):
    signed_up = hq.create_customer({"first_name": "Ana", "last_name": "García", "tax_id": "x-1 23"}, "till")
    lanehub_only = hq.create_customer({"first_name": "Own", "last_name": "Customer", "tax_id": "Z9"}, "till")
    config = load_config(write_config(tmp_path, {"customers": {
        "source": "crm", "key": "tax_id", "columns": {"NIF": "tax_id", "NAME": "first_name", "SURNAME": "last_name",
                                                       "CITY": "city"},
        "owned": ["first_name", "last_name", "city"], "deactivate_missing": True}}))
    target = TARGETS["customers"](hq)
    spec = ImportSpec.from_config(config, "customers", target)
    rows = [{"NIF": "X123", "NAME": "Ana", "SURNAME": "García", "CITY": "Madrid"},
            {"NIF": "Y456", "NAME": "Luis", "SURNAME": "Pérez", "CITY": "Vigo"}]
    plan = run_import(target, spec, CsvSource(write_csv(tmp_path / "crm.csv", rows)), "import:crm")
    assert [c.describe() for c in plan.changes] == [
        "update X123: city: '' -> 'Madrid'; external_id: '' -> 'X123'",
        "create Y456: tax_id: '' -> 'Y456'; first_name: '' -> 'Luis'; last_name: '' -> 'Pérez'; city: '' -> 'Vigo'; "
        "external_id: '' -> 'Y456'"]
    linked = hq.replica.get("customer", signed_up["id"])
    assert (linked["external_id"], linked["city"], linked["code"]) == ("X123", "Madrid", signed_up["code"])
    # lanehub's own customer (no external number) is never deactivated by the source's absence.
    assert hq.replica.get("customer", lanehub_only["id"])["active"] is True
    assert run_import(target, spec, CsvSource(write_csv(tmp_path / "crm.csv", rows)), "import:crm").changes == []
    gone = run_import(target, spec, CsvSource(write_csv(tmp_path / "crm.csv", rows[1:])), "import:crm")
    assert [c.describe() for c in gone.changes] == ["deactivate X123: active: yes -> no"]


def test_a_key_that_cannot_match_records_is_a_config_error(hq, tmp_path):
    config = load_config(write_config(tmp_path, {"customers": {"key": "sku"}}))
    with pytest.raises(ConfigError, match="key: 'sku' is not a key for customer records"):
        ImportSpec.from_config(config, "customers", TARGETS["customers"](hq))


def test_hq_gives_the_fields_back_when_the_import_section_is_removed(make_chain, tmp_path):
    from helpers import db_query, edge_db, wait_until

    chain = make_chain(stores=("S001",), hq_settings={"import": {"customers": POS_CONFIG}})
    owned = "SELECT field FROM field_rules WHERE active = 1 AND owner != '' ORDER BY field"
    wait_until(lambda: len(db_query(edge_db(chain, "S001"), owned)) == 4, message="the rules at the store")
    chain.hq.stop()
    chain.hq_settings = {}
    chain.hq.config = chain.hq_config()
    chain.hq.start()
    wait_until(lambda: db_query(edge_db(chain, "S001"), owned) == [], message="the rules released at the store")


def test_a_csv_import_is_previewed_then_done_on_the_imports_page(sites):
    import io

    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/imports/")
    good = b"external_id,first_name,last_name,city\n7,Ann,Lee,Vigo\n8,Bo,Ek,Lugo\n"

    def upload(data: bytes, **form):
        return client.post("/imports/customers", data={"csrf_token": token, "file": (io.BytesIO(data), "pos.csv"), **form},
                           content_type="multipart/form-data")

    preview = upload(good)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "csv -&gt; lanehub: added 2; updated 0; deactivated 0" in page
    assert "first_name: — → Ann" in page
    assert hq.conn.execute("SELECT count(*) FROM customers WHERE external_id != ''").fetchone()[0] == 0
    bad = upload(b"external_id,first_name,last_name\n9,Cy,\n", confirm="1")
    assert bad.status_code == 422 and "pos.csv line 2 (9): last_name is required" in bad.get_data(as_text=True)
    assert "Nothing was imported" in bad.get_data(as_text=True)
    assert upload(good, max_deactivate="-1").status_code == 422
    done = client.post("/imports/customers", data={"csrf_token": token, "confirm": "1",
                                                   "file": (io.BytesIO(good), "pos.csv")},
                       content_type="multipart/form-data", follow_redirects=True)
    assert "csv -&gt; lanehub: added 2; updated 0; deactivated 0 (0 unchanged)." in done.get_data(as_text=True)
    made = hq.conn.execute("SELECT created_by FROM customers WHERE external_id = '7'").fetchone()[0]
    assert made == "import:csv:admin"  # who ran it stays in the audit trail
    capped = upload(b"external_id,first_name,last_name,city\n7,Ann,Lee,Vigo\n", deactivate_missing="1",
                    max_deactivate="0", confirm="1")
    assert capped.status_code == 422 and "more than --max-deactivate 0" in capped.get_data(as_text=True)
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert "Upload customers" not in viewer.get("/imports/").get_data(as_text=True)
    assert viewer.post("/imports/customers", data={"csrf_token": csrf(viewer, "/imports/")}).status_code == 403


def test_an_ad_hoc_import_without_a_section_owns_nothing(hq, tmp_path):
    from hq.catalogue import HQCatalogue

    config = load_config(write_config(tmp_path, {}))
    rates = TARGETS["rates"](hq)
    spec = ImportSpec.from_config(config, "rates", rates)
    run_import(rates, spec, CsvSource(write_csv(tmp_path / "r.csv", [{"code": "VIP", "name": "VIP"}], ",")), "import:csv")
    assert sync_field_rules(hq, spec, rates, "t") == 0
    assert HQCatalogue(hq).put_rate("VIP", {"name": "Gold"}, "clerk")["name"] == "Gold"  # still editable


def test_an_import_killed_while_writing_leaves_nothing_half_done(tmp_path):
    import signal
    import subprocess
    import time

    from lanehub.chain.processes import lanehub_command

    config = write_config(tmp_path, {"customers": POS_CONFIG})
    rows = [{"NUM": str(10_000 + i), "NAME": f"Name{i}", "SURNAME": f"Surname{i}", "MAIL": "", "CITY": "Vigo", "TAXID": ""}
            for i in range(30_000)]
    source = write_csv(tmp_path / "pos.csv", rows)
    proc = subprocess.Popen(lanehub_command("hq", "import", "customers", str(source), "--progress", "-c", str(config)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while b"Writing" not in seen:  # the bar is on stderr; kill once the plan is being written
        chunk = proc.stderr.read1(4096)
        assert chunk, f"the import ended before writing: {seen[-500:]!r}"
        seen += chunk
    time.sleep(0.5)  # 30,000 creates take seconds: this is inside the write transaction
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    hq = HQDatabase(tmp_path / "hq.db", CodeFormat())
    try:
        assert hq.conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0
        assert hq.head() == 0 and hq.meta.get_int("next_code", 1) == 1  # no change, no code number used
    finally:
        hq.close()
    again = run_lanehub("hq", "import", "customers", str(source), "-c", str(config))
    assert again.stdout.strip() == "pos -> lanehub: added 30000; updated 0; deactivated 0 (0 unchanged)"


def test_the_documented_import_configuration_loads(hq, tmp_path):
    text = (Path(__file__).resolve().parent.parent / "docs" / "importing.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "hq.toml"
    path.write_text(f'[hq]\ndb = "{tmp_path / "hq.db"}"\n' + example)
    spec = ImportSpec.from_config(load_config(path), "customers", TARGETS["customers"](hq))
    assert spec.columns["NUM"] == "external_id" and "payment_status" in spec.owned and spec.export == ("email", "phone", "mobile")


@pytest.mark.parametrize("target", ["csv", "sql"])
def test_an_export_target_that_is_away_fails_in_one_line_and_the_changes_wait(hq, tmp_path, target):
    customers_import(hq, tmp_path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the drop should be")
    away = {"csv": str(blocker / "drop"), "sql": "postgresql+psycopg://nobody@127.0.0.1:1/pos?connect_timeout=2"}[target]
    config = write_config(tmp_path, {"customers": dict(POS_CONFIG, export_to=away)}, db=hq.path)
    ana = hq.conn.execute("SELECT id FROM customers WHERE external_id = '1001'").fetchone()[0]
    hq.update_customer(ana, {"email": "ana@new.example"}, "clerk")
    failed = run_lanehub("hq", "export", "customers", "-c", str(config), check=False)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1 and "error: export to" in failed.stderr
    drop = tmp_path / "drop"
    config.write_text(config.read_text().replace(away, str(drop)))
    done = run_lanehub("hq", "export", "customers", "-c", str(config))
    assert "exported 1 customers" in done.stdout  # the change waited for the target
    assert "ana@new.example" in next(drop.glob("customers-*.csv")).read_text()
