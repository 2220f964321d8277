"""Batches at HQ: rows made, reviewed, then executed all or nothing; after that
read-only for good (module, database triggers, page and CLI all refuse)."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner
from web_sites import csrf, login

from hq.batches.checks import similar_customers
from hq.batches.writes import BatchClosed, BatchError, Batches, NotReady
from hq.catalogue import HQCatalogue
from hq.db import HQDatabase
from hq.storage import IntegrityErrors, connect_hq
from lanehub.cli.main import main
from lanehub.domain.codes import CodeFormat
from lanehub.replication.sqlite import dialect_of
from lanehub.runtime.config import dump_toml

# Row 1 is an existing customer again, row 2 has a bad e-mail, row 4 is row 3 again.
CSV = """first_name,last_name,email,phone,rate,no_paper
Ann,Lee,ANN@example.com,,,
Bob,Roe,bob@bad,,,
Cid,Poe,,600 111 222,vip,
Cid,Poe,,600111222,,
Dee,Ray,dee@example.com,,,yes
"""


@pytest.fixture
def db(hq_target, tmp_path):
    hq = HQDatabase(hq_target, CodeFormat())
    HQCatalogue(hq).put_rate("VIP", {"name": "Very important"}, "t")
    hq.create_customer({"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"}, "t")  # CUST-00001
    return hq


def statuses(batches: Batches, batch_id: int) -> list[str]:
    return [row["status"] for row in batches.review(batch_id)]


def customers(db: HQDatabase) -> list[str]:
    return [row[0] for row in db.conn.execute("SELECT code FROM customers ORDER BY code")]


def loaded(db: HQDatabase) -> tuple[Batches, int]:
    batches = Batches(db)
    batch_id = batches.new("new_customers", "alice", "spring fair sign-ups")
    assert batches.load_csv(batch_id, CSV) == [1, 2, 3, 4, 5]
    return batches, batch_id


# --- the module -----------------------------------------------------------------------------

def test_a_new_customers_batch_is_reviewed_fixed_and_executed_in_one_go(db):
    batches, batch_id = loaded(db)
    rows = batches.review(batch_id)
    assert [r["status"] for r in rows] == ["duplicate", "invalid", "ok", "duplicate", "ok"]
    assert rows[0]["duplicates"] == [{"customer_id": db.find_customer("CUST-00001")["id"], "code": "CUST-00001",
                                      "reason": "same name and e-mail"}]
    assert rows[1]["errors"] == {"email": "is not a valid e-mail address"}
    assert rows[3]["duplicates"] == [{"row": 3, "reason": "same name and phone"}]

    head = db.head()
    with pytest.raises(NotReady) as refused:
        batches.execute(batch_id, "alice")
    assert [p.split(" ")[1] for p in refused.value.problems] == ["1", "2", "4"]
    assert "bob@bad" not in str(refused.value) and "email is not a valid e-mail address" in str(refused.value)
    assert db.head() == head and customers(db) == ["CUST-00001"]

    batches.fix(batch_id, 2, {"email": "bob@example.com"})
    batches.drop(batch_id, 1)
    batches.keep(batch_id, 4)  # a person checked: two different people named Cid Poe share a phone
    assert statuses(batches, batch_id) == ["dropped", "ok", "ok", "kept", "ok"]
    done = batches.execute(batch_id, "alice")

    assert done["status"] == "executed" and done["executed_by"] == "alice" and done["executed_at"]
    assert done["summary"] == "created 4 customers; 1 row dropped"
    rows = batches.review(batch_id)
    assert [(r["status"], r["result"]) for r in rows] == [
        ("dropped", ""), ("created", "CUST-00002"), ("created", "CUST-00003"), ("created", "CUST-00004"),
        ("created", "CUST-00005")]
    assert customers(db) == ["CUST-00001", "CUST-00002", "CUST-00003", "CUST-00004", "CUST-00005"]
    logged = [c for c in db.changes_since(head + 1) if c.entity == "customer"]
    assert [(c.fields["code"], c.by, c.origin) for c in logged] == [
        ("CUST-00002", "alice", "hq"), ("CUST-00003", "alice", "hq"), ("CUST-00004", "alice", "hq"),
        ("CUST-00005", "alice", "hq")]
    assert db.find_customer("CUST-00002")["email"] == "bob@example.com"
    assert db.find_customer("CUST-00003")["rate"] == "VIP"
    assert db.find_customer("CUST-00005")["no_paper"] is True
    # The kept pair was decided by a person: it does not wait in the duplicates review.
    assert db.duplicates("open") == [] and len(db.duplicates("dismissed")) == 1


def test_an_executed_or_cancelled_batch_can_never_change(db):
    batches, batch_id = loaded(db)
    batches.drop(batch_id, 1)
    batches.drop(batch_id, 2)
    batches.drop(batch_id, 4)
    batches.execute(batch_id, "alice")
    before = batches.review(batch_id)
    for verb in (lambda: batches.add_row(batch_id, {"first_name": "Eve", "last_name": "Late"}),
                 lambda: batches.load_csv(batch_id, CSV), lambda: batches.fix(batch_id, 3, {"city": "Bilbao"}),
                 lambda: batches.drop(batch_id, 3), lambda: batches.keep(batch_id, 4),
                 lambda: batches.execute(batch_id, "alice"), lambda: batches.cancel(batch_id, "alice")):
        with pytest.raises(BatchClosed, match=f"batch {batch_id} is executed"):
            verb()
    # Other code paths meet the database's triggers.
    raw = connect_hq(db.path)
    for sql in ("UPDATE batch_rows SET dropped = 1 WHERE batch_id = ?", "DELETE FROM batch_rows WHERE batch_id = ?",
                "INSERT INTO batch_rows (batch_id, row_no, fields) VALUES (?, 99, '{}')",
                "UPDATE batches SET status = 'open' WHERE id = ?", "DELETE FROM batches WHERE id = ?"):
        with pytest.raises(IntegrityErrors, match="this batch is closed"):
            raw.execute(sql, (batch_id,))
    raw.close()
    assert batches.review(batch_id) == before and batches.get(batch_id)["status"] == "executed"

    other = batches.new("new_customers", "alice")
    batches.add_row(other, {"first_name": "Eve", "last_name": "Late"})
    batches.cancel(other, "bob")
    assert batches.get(other)["cancelled_by"] == "bob"
    with pytest.raises(BatchClosed, match="is cancelled"):
        batches.execute(other, "alice")
    with pytest.raises(IntegrityErrors, match="this batch is closed"):
        db.conn.execute("UPDATE batch_rows SET fields = '{}' WHERE batch_id = ?", (other,))
    assert customers(db) == ["CUST-00001", "CUST-00002", "CUST-00003"]


def test_execution_is_all_or_nothing(db):
    # A write the database refuses half-way (here a trigger on one name) undoes the rows before it.
    if dialect_of(db.conn) == "sqlite":
        db.conn.execute("CREATE TRIGGER no_refused BEFORE INSERT ON customers WHEN NEW.last_name = 'Refused' "
                        "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
    else:
        db.conn.raw.execute("CREATE FUNCTION no_refused() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                            "IF NEW.last_name = 'Refused' THEN RAISE EXCEPTION 'refused for the test' "
                            "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$; "
                            "CREATE TRIGGER no_refused BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION no_refused()")
    batches = Batches(db)
    batch_id = batches.new("new_customers", "alice")
    batches.load_csv(batch_id, "first_name,last_name\nEva,One\nFay,Refused\nGil,Three\n")
    head, next_code = db.head(), db.meta.get("next_code")
    with pytest.raises(NotReady, match="row 2: refused by the database"):
        batches.execute(batch_id, "alice")
    assert db.head() == head and db.meta.get("next_code") == next_code and customers(db) == ["CUST-00001"]
    assert batches.get(batch_id)["status"] == "open" and statuses(batches, batch_id) == ["ok", "ok", "ok"]
    batches.drop(batch_id, 2)
    batches.execute(batch_id, "alice")
    assert customers(db) == ["CUST-00001", "CUST-00002", "CUST-00003"]


def test_bad_columns_refuse_the_file_and_bad_values_are_row_errors(db):
    batches = Batches(db)
    batch_id = batches.new("new_customers", "alice")
    with pytest.raises(Exception, match="unknown column.s. emial") as refused:
        batches.load_csv(batch_id, "first_name,last_name,emial\nAnn,Day,a@example.com\n")
    assert "columns" in refused.value.errors and batches.review(batch_id) == []
    with pytest.raises(Exception, match="code is not a field of this batch"):
        batches.add_row(batch_id, {"first_name": "Ann", "last_name": "Day", "code": "CUST-00077"})
    batches.load_csv(batch_id, "first_name,last_name,rate,no_paper,country\nAnn,Day,NOPE,maybe,Spain\nOnly,,,,\n")
    rows = batches.review(batch_id)
    assert rows[0]["errors"] == {"rate": "NOPE is not a rate (rates: VIP; or none)", "no_paper": "must be true or false",
                                 "country": "must be a two-letter country code (e.g. ES, GB)"}
    assert rows[1]["errors"] == {"last_name": "is required"}
    batches.fix(batch_id, 1, {"rate": "", "no_paper": "no", "country": "es"})
    batches.fix(batch_id, 2, {"last_name": "Once"})
    assert statuses(batches, batch_id) == ["ok", "ok"]
    with pytest.raises(BatchError, match="no row 7"):
        batches.drop(batch_id, 7)
    with pytest.raises(BatchError, match="not flagged as a possible duplicate"):
        batches.keep(batch_id, 1)
    batches.execute(batch_id, "alice")
    assert db.find_customer("CUST-00002")["country"] == "ES"


def test_similar_customers_are_same_name_plus_email_or_phone(db):
    db.create_customer({"first_name": "José", "last_name": "Pérez", "mobile": "+34 611 22 33 44"}, "t")
    gone = db.create_customer({"first_name": "Old", "last_name": "Timer", "email": "old@example.com"}, "t")
    db.update_customer(gone["id"], {"active": False}, "t")
    conn = db.conn
    assert [(code, reason) for _, code, reason in similar_customers(conn, {"first_name": "ann ", "last_name": "LEE",
                                                                          "email": "Ann@Example.com"})] == \
        [("CUST-00001", "same name and e-mail")]
    assert [code for _, code, _ in similar_customers(conn, {"first_name": "Jose", "last_name": "Perez",
                                                           "phone": "34611223344"})] == ["CUST-00002"]
    assert similar_customers(conn, {"first_name": "Ann", "last_name": "Lee"}) == []  # a name alone is common
    assert similar_customers(conn, {"first_name": "Other", "last_name": "Person", "email": "ann@example.com"}) == []
    assert similar_customers(conn, {"first_name": "Old", "last_name": "Timer", "email": "old@example.com"}) == []


def test_a_customer_updates_batch_previews_then_sets_rate_payment_status_or_deactivates(db):
    db.create_customer({"first_name": "Bea", "last_name": "Sol", "rate": "VIP"}, "t")  # CUST-00002
    batches = Batches(db)
    with pytest.raises(Exception, match="GOLD is not a rate"):
        batches.new("customer_updates", "alice", action="set_rate", value="gold")
    with pytest.raises(Exception, match="must be one of valid, pending, defaulter"):
        batches.new("customer_updates", "alice", action="set_payment_status", value="late")

    rate_batch = batches.new("customer_updates", "alice", "VIP for all", action="set_rate", value="vip")
    batches.load_csv(rate_batch, "code,name\nCUST-00001,Ann\nCUST-00099,Nobody\ncust-00002,Bea\nCUST-00001,Ann again\n")
    rows = batches.review(rate_batch)
    assert [r["status"] for r in rows] == ["ok", "invalid", "unchanged", "invalid"]
    assert rows[0]["preview"] == {"code": "CUST-00001", "name": "Ann Lee", "field": "rate", "current": "(none)",
                                  "new": "VIP"}
    assert rows[1]["errors"] == {"code": "no customer CUST-00099"}
    assert rows[3]["errors"] == {"code": "CUST-00001 is already in row 1"}
    with pytest.raises(NotReady, match="row 2 is invalid .code no customer CUST-00099"):
        batches.execute(rate_batch, "alice")
    batches.drop(rate_batch, 2)
    batches.drop(rate_batch, 4)
    head = db.head()
    assert batches.execute(rate_batch, "alice")["summary"] == "updated 1 customer; 1 unchanged; 2 rows dropped"
    assert [(c.fields.get("rate"), c.by) for c in db.changes_since(head + 1)] == [("VIP", "alice")]
    assert [(r["status"], r["preview"].get("current")) for r in batches.review(rate_batch)] == [
        ("updated", "(none)"), ("dropped", None), ("unchanged", "VIP"), ("dropped", "(none)")]  # as it was

    pay = batches.new("customer_updates", "alice", action="set_payment_status", value="defaulter")
    batches.add_row(pay, {"code": "CUST-00002"})
    assert batches.review(pay)[0]["preview"]["current"] == "valid"
    batches.execute(pay, "alice")
    assert db.find_customer("CUST-00002")["payment_status"] == "defaulter"

    off = batches.new("customer_updates", "alice", action="deactivate")
    batches.load_csv(off, "CUST-00001\nCUST-00002\n")  # one code per line
    assert [r["preview"]["new"] for r in batches.review(off)] == ["no", "no"]
    batches.execute(off, "alice")
    assert db.conn.execute("SELECT count(*) FROM customers WHERE active = 1").fetchone()[0] == 0

    none = batches.new("customer_updates", "alice", action="set_rate", value="-")
    batches.add_row(none, {"code": "CUST-00002"})
    batches.execute(none, "alice")
    assert db.find_customer("CUST-00002")["rate"] == ""


def test_fields_owned_by_an_external_system_are_row_errors(db):
    from lanehub.domain import ownership

    ann = db.find_customer("CUST-00001")
    db.write("field_rule", ownership.rule_key("customer", "payment_status"),
              {"entity": "customer", "field": "payment_status", "owner": "POS", "export": False, "active": True}, "t")
    db.write("customer", ann["id"], {"external_id": "POS-1"}, "t")
    batches = Batches(db)
    batch_id = batches.new("customer_updates", "alice", action="set_payment_status", value="pending")
    batches.add_row(batch_id, {"code": "CUST-00001"})
    assert batches.review(batch_id)[0]["errors"] == {"payment_status": "comes from POS; change it there"}
    with pytest.raises(NotReady, match="row 1 is invalid"):
        batches.execute(batch_id, "alice")
    assert db.find_customer("CUST-00001")["payment_status"] == "valid"


# --- the CLI ------------------------------------------------------------------------------

@pytest.fixture
def config(tmp_path, db):
    path = tmp_path / "hq.toml"
    path.write_text(dump_toml({"hq": {"db": db.path}}))
    return path


def cli(config, *args, ok=True):
    result = CliRunner().invoke(main, ["hq", "batch", *args, "-c", str(config)], catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def test_the_batch_commands_review_fix_and_execute(config, tmp_path, db):
    csv = tmp_path / "fair.csv"
    csv.write_text(CSV)
    out = cli(config, "new-customers", str(csv), "--description", "fair", "--by", "alice")
    assert out.startswith("batch 1  new customers  [open]  fair")
    assert re.search(r"1  duplicate\s+Ann Lee <ANN@example.com>\n\s+possible duplicate of CUST-00001 "
                     r"\(same name and e-mail\)", out)
    assert re.search(r"2  invalid\s+Bob Roe <bob@bad>\n\s+email: is not a valid e-mail address", out)
    assert "possible duplicate of row 3 (same name and phone)" in out and "not ready: 3 rows to fix, drop or keep" in out
    refused = cli(config, "execute", "1", ok=False)
    assert "batch 1 was not executed: row 1 may be a duplicate of CUST-00001" in refused
    assert len(refused.strip().splitlines()) == 1

    cli(config, "fix", "1", "2", "email=bob@example.com")
    cli(config, "drop", "1", "1")
    assert "ready: lanehub hq batch execute 1" in cli(config, "keep", "1", "4")
    done = cli(config, "execute", "1", "--by", "alice")
    assert "batch 1 executed: created 4 customers; 1 row dropped" in done and "=> CUST-00005" in done
    assert "executed" in cli(config, "list", "--status", "executed") and cli(config, "list", "--status", "open") == "no open batches\n"
    for args in (("drop", "1", "3"), ("add-row", "1", "first_name=X", "last_name=Y"), ("cancel", "1"),
                 ("fix", "1", "3", "city=Vigo"), ("execute", "1")):
        assert "batch 1 is executed: it can no longer change" in cli(config, *args, ok=False)
    assert cli(config, "add-row", "1", "first_name", ok=False).strip().endswith("'first_name' is not field=value")

    codes = tmp_path / "codes.txt"
    codes.write_text("CUST-00002\nCUST-00404\n")
    out = cli(config, "customer-updates", "CUST-00001", "--file", str(codes), "--set-payment-status", "pending")
    assert "CUST-00001 Ann Lee: payment_status valid -> pending" in out and "code: no customer CUST-00404" in out
    cli(config, "drop", "2", "3")
    assert "updated 2 customers" in cli(config, "execute", "2")
    assert db.find_customer("CUST-00002")["payment_status"] == "pending"
    assert "give exactly one of" in cli(config, "customer-updates", "CUST-00001", "--deactivate",
                                        "--set-rate", "VIP", ok=False)
    assert "error: value GOLD is not a rate" in cli(config, "customer-updates", "CUST-00001", "--set-rate", "gold", ok=False)
    keyed = cli(config, "new-customers")  # no CSV: rows are keyed in
    assert keyed.startswith("batch 3  new customers  [open]") and "no rows yet" in keyed
    assert "error: emial is not a field of this batch" in cli(config, "add-row", "3", "emial=x@example.com", ok=False)
    assert "1  ok" in cli(config, "add-row", "3", "first_name=Eve", "last_name=Keyed")
    assert "batch 3 cancelled" in cli(config, "cancel", "3")
    assert "[cancelled]" in cli(config, "show", "3") and "no batch 9" in cli(config, "show", "9", ok=False)


# --- the pages ------------------------------------------------------------------------------

def upload(client, token, text, description="fair"):
    return client.post("/batches/new-customers", data={"csrf_token": token, "description": description,
                                                       "file": (io.BytesIO(text.encode()), "fair.csv")},
                       content_type="multipart/form-data")


def test_a_batch_is_uploaded_reviewed_fixed_and_executed_on_the_page(sites):
    apps, hq, _ = sites
    hq.create_customer({"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"}, "t")  # CUST-00002
    HQCatalogue(hq).put_rate("VIP", {"name": "Very important"}, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/batches/")
    bad = upload(client, token, "first_name,surname\nA,B\n")
    assert bad.status_code == 422 and "unknown column(s) surname" in bad.get_data(as_text=True)

    started = upload(client, token, CSV.replace("Dee,Ray", "Dee,<b>Ray</b>"))
    assert started.status_code == 302
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Batch 1 started with 5 rows" in page and "&lt;b&gt;Ray&lt;/b&gt;" in page and "<b>Ray" not in page
    assert 'id="err-2-email">email is not a valid e-mail address' in page
    assert 'Possible duplicate of\n        <a href="/customers/CUST-00002">CUST-00002</a>' in page
    assert '<a href="#row-3">row 3</a>' in page

    def post(**form):
        return client.post("/batches/1", data={"csrf_token": token, **form})

    refused = post(action="execute")
    assert refused.status_code == 422 and "batch 1 was not executed: row 1 may be a duplicate of CUST-00002" in \
        refused.get_data(as_text=True)
    fix = {name: "" for name in ("first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city",
                                 "postcode", "country", "contact", "notes", "rate", "payment_status", "no_paper")}
    assert post(action="fix", row_no="2", **(fix | {"first_name": "Bob", "last_name": "Roe",
                                                    "email": "bob@example.com"})).status_code == 302
    assert post(action="drop", row_no="1").status_code == 302
    assert post(action="keep", row_no="4").status_code == 302
    assert post(action="add_row", **(fix | {"first_name": "Eve", "last_name": "Added"})).status_code == 302
    done = post(action="execute")
    assert done.status_code == 302
    page = client.get("/batches/1").get_data(as_text=True)
    assert "Executed" in page and "by admin: created 5 customers; 1 row dropped" in page
    assert '<a href="/customers/CUST-00007">CUST-00007</a>' in page and 'name="action"' not in page
    assert hq.find_customer("CUST-00007")["last_name"] == "Added"
    assert hq.find_customer("CUST-00006")["last_name"] == "<b>Ray</b>"

    before = Batches(hq).review(1)
    closed = post(action="drop", row_no="3")
    assert closed.status_code == 409 and "batch 1 is executed: it can no longer change" in closed.get_data(as_text=True)
    assert Batches(hq).review(1) == before
    listing = client.get("/batches/?status=executed").get_data(as_text=True)
    assert "spring" not in listing and "5 created" in listing and "1 dropped" in listing


def test_a_customer_updates_batch_on_the_page(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/batches/")
    started = client.post("/batches/customer-updates", data={
        "csrf_token": token, "description": "bad payers", "action": "set_payment_status",
        "payment_status": "defaulter", "codes": "CUST-00001\r\nCUST-00404\r\n"})
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "valid &rarr; defaulter" in page and "no customer CUST-00404" in page
    client.post("/batches/1", data={"csrf_token": token, "action": "drop", "row_no": "2"})
    client.post("/batches/1", data={"csrf_token": token, "action": "execute"})
    assert hq.find_customer("CUST-00001")["payment_status"] == "defaulter"
    bad = client.post("/batches/customer-updates", data={"csrf_token": token, "action": "explode", "codes": "x"})
    assert bad.status_code == 422 and "must be one of set_rate" in bad.get_data(as_text=True)


def test_only_customers_import_may_change_batches(sites):
    apps, hq, _ = sites
    batches = Batches(hq)
    batch_id = batches.new("new_customers", "t")
    batches.add_row(batch_id, {"first_name": "Zoe", "last_name": "Quiet"})
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    listing = viewer.get("/batches/")
    assert listing.status_code == 200 and "Start the batch" not in listing.get_data(as_text=True)
    page = viewer.get(f"/batches/{batch_id}")
    assert page.status_code == 200 and "Zoe" in page.get_data(as_text=True)
    assert 'name="action"' not in page.get_data(as_text=True)
    token = csrf(viewer, "/batches/")
    for path, form in ((f"/batches/{batch_id}", {"action": "execute"}), (f"/batches/{batch_id}", {"action": "cancel"}),
                       ("/batches/new-customers", {}), ("/batches/customer-updates", {"action": "deactivate"})):
        assert viewer.post(path, data={"csrf_token": token, **form}).status_code == 403, path
    assert batches.get(batch_id)["status"] == "open" and hq.find_customer("CUST-00002") is None
    assert viewer.get("/batches/77").status_code == 404 and viewer.get("/batches/x").status_code == 404
    for path in ("/batches/", f"/batches/{batch_id}"):
        text = viewer.get(path).get_data(as_text=True)
        title = re.search(r"<title>(.*?)</title>", text, re.S).group(1)
        assert "<" not in title and text.count("<main>") == 1


def test_the_batch_history_says_who_changed_which_row_and_cannot_be_rewritten(hq_target, tmp_path):
    from hq.batches.writes import Batches
    from hq.db import HQDatabase
    from lanehub.domain.codes import CodeFormat

    db = HQDatabase(hq_target, CodeFormat())
    batches = Batches(db, "alice")
    batch = batches.new("new_customers", "alice")
    batches.load_csv(batch, "first_name,last_name,email\nAnn,Lee,bad-mail\nBo,Ek,\n")
    batches.fix(batch, 1, {"email": "ann@example.com"})
    Batches(db, "bob").drop(batch, 2)
    assert [(e["by"], e["action"], e["row_no"], e["detail"]) for e in batches.history(batch)] == [
        ("alice", "added", None, "2 rows: 1-2"), ("alice", "fixed", 1, "email = 'ann@example.com'"),
        ("bob", "dropped", 2, "")]
    with pytest.raises(IntegrityErrors, match="never rewritten"):
        db.conn.execute("UPDATE batch_events SET by = 'mallory'")
    batches.execute(batch, "alice")
    with pytest.raises(IntegrityErrors, match="closed"):
        db.conn.execute("INSERT INTO batch_events (batch_id, at, by, action) VALUES (?, 'now', 'x', 'fixed')", (batch,))
