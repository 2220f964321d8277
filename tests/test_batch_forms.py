"""The batch row forms (hq/web/batches.py, batches/review.html), through the
HQ Manager's real Flask app and database: fields are labelled in words and
keyed in with the input that fits them (a checkbox for no_paper, a select of
the existing rates and of the payment states, e-mail and phone inputs), a
row's problems show next to its fields with what was typed kept, and the
checkbox can be ticked and unticked."""

from __future__ import annotations

import io
import re

from web_sites import csrf, login

from hq.batches.writes import Batches
from hq.catalogue import HQCatalogue


def started_batch(sites, csv: str = ""):
    """An admin's client, its CSRF token and a new-customers batch (1), with ``csv``'s rows."""
    apps, hq, _ = sites
    HQCatalogue(hq).put_rate("VIP", {"name": "Very important"}, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/batches/")
    data = {"csrf_token": token, "description": "fair"}
    if csv:
        data["file"] = (io.BytesIO(csv.encode()), "fair.csv")
    assert client.post("/batches/new-customers", data=data, content_type="multipart/form-data").status_code == 302
    return client, token, hq


def add_form(page: str) -> str:
    return re.search(r'<form method="post" class="fields" id="add-row">(.*?)</form>', page, re.S).group(1)


def test_the_add_a_row_form_labels_its_fields_and_uses_fitting_inputs(sites):
    client, _, _ = started_batch(sites)
    form = add_form(client.get("/batches/1").get_data(as_text=True))
    assert '<label for="add-first_name">First name *</label>' in form
    assert '<label for="add-postcode">Postcode</label>' in form
    assert not re.search(r">\s*(first_name|no_paper|payment_status)\s*<", form)  # no raw field names shown
    assert re.search(r'<input type="checkbox" id="add-no_paper" name="no_paper" value="yes"\s*>', form)
    assert "E-mail receipts instead of printing</label>" in form
    assert re.search(r'<input id="add-email" type="email" name="email"', form)
    assert re.search(r'<input id="add-phone" type="tel" name="phone"', form)
    rate = re.search(r'<select id="add-rate" name="rate"\s*>(.*?)</select>', form, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"', rate) == ["", "VIP"] and "Very important" in rate
    payment = re.search(r'<select id="add-payment_status" name="payment_status"\s*>(.*?)</select>', form, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"', payment) == ["", "valid", "pending", "defaulter"]
    assert "<textarea" in form and 'name="notes"' in form


def test_a_ticked_checkbox_and_a_chosen_rate_reach_the_customer_and_a_tick_can_be_taken_back(sites):
    client, token, hq = started_batch(sites)
    # As a browser posts the form: the hidden empty no_paper first, then the ticked box.
    added = client.post("/batches/1", data={"csrf_token": token, "action": "add_row", "first_name": "Nora",
                                            "last_name": "Paperless", "rate": "VIP", "no_paper": ["", "yes"]})
    assert added.status_code == 302 and added.headers["Location"].endswith("/batches/1?row=1#row-1")
    page = client.get("/batches/1").get_data(as_text=True)
    assert re.search(r'id="fix-1-no_paper" name="no_paper" value="yes" checked', page)
    assert re.search(r'<option value="VIP" selected>', page)
    client.post("/batches/1", data={"csrf_token": token, "action": "add_row", "first_name": "Pat",
                                    "last_name": "Printed", "no_paper": ["", "yes"]})
    untick = client.post("/batches/1", data={"csrf_token": token, "action": "fix", "row_no": "2",
                                             "first_name": "Pat", "last_name": "Printed", "no_paper": [""]})
    assert untick.status_code == 302
    assert "no_paper" not in Batches(hq).review(1)[1]["fields"]
    assert client.post("/batches/1", data={"csrf_token": token, "action": "execute"}).status_code == 302
    nora, pat = hq.find_customer("CUST-00002"), hq.find_customer("CUST-00003")
    assert (nora["last_name"], nora["no_paper"], nora["rate"]) == ("Paperless", True, "VIP")
    assert (pat["last_name"], pat["no_paper"]) == ("Printed", False)


def test_a_bad_row_shows_its_errors_next_to_its_fields_with_what_was_typed(sites):
    client, token, _ = started_batch(sites)
    added = client.post("/batches/1", data={"csrf_token": token, "action": "add_row", "first_name": "Bea",
                                            "last_name": "Typo", "email": "bea-at-example", "no_paper": [""]})
    page = client.get(added.headers["Location"]).get_data(as_text=True)
    row = re.search(r'<tr id="row-1".*?</tr>', page, re.S).group(0)
    assert "<details open><summary>Fix</summary>" in row  # the row just added, with a problem: its form is open
    field = re.search(r'<div class="field has-error">\s*<label for="fix-1-email">E-mail</label>(.*?)</div>', row, re.S)
    assert field, "the e-mail field is marked as wrong"
    assert 'value="bea-at-example"' in field.group(1) and 'aria-describedby="fix-1-email-error"' in field.group(1)
    assert '<span class="error" id="fix-1-email-error">E-mail: is not a valid e-mail address</span>' in field.group(1)
    # Another row's form stays closed; an untouched page opens none.
    assert "<details open>" not in client.get("/batches/1").get_data(as_text=True)


def test_a_value_from_a_file_that_is_no_choice_is_kept_and_said_so(sites):
    client, _, _ = started_batch(sites, "first_name,last_name,rate\nUma,Unknown,BOGUS\n")
    page = client.get("/batches/1").get_data(as_text=True)
    fix = re.search(r'<select id="fix-1-rate" name="rate"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert '<option value="BOGUS" selected>BOGUS (not a choice: pick one)</option>' in fix
    assert 'id="fix-1-rate-error"' in page  # and the check says why, next to it


def test_a_customer_updates_batch_row_is_keyed_in_by_its_customer_code(sites):
    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/batches/")
    client.post("/batches/customer-updates", data={"csrf_token": token, "action": "deactivate", "codes": ""})
    form = add_form(client.get("/batches/1").get_data(as_text=True))
    assert '<label for="add-code">Customer code</label>' in form
