"""The HQ Manager and the store page through Flask's test client: every route
checks its permission, login is hashed and throttled, every form needs its
CSRF token, output is escaped, and errors show next to their field."""

from __future__ import annotations

import json
import re

import pytest
from web_sites import PASSWORD, csrf, login

from hq.imports.engine import import_file
from hq.users import HQUsers
from lanehub.web.app import PUBLIC


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = (rule.rule.replace("<ref>", "CUST-00001").replace("<a>", "x").replace("<b>", "y")
                .replace("<code>", "VIP").replace("<ticket>", "S001-L1-1").replace("<job>", "job-x").replace("<change_id>", "c-1")
                .replace("<username>", "viewer").replace("<sku>", "MILK").replace("<lane>", "L1"))
        for method in sorted(rule.methods & {"GET", "POST"}):
            yield rule.endpoint, path, method, getattr(view, "permission", None)


@pytest.mark.parametrize("site", ["hq", "store"])
def test_every_route_declares_a_permission_and_refuses_anonymous_and_unpermitted_users(sites, site):
    apps, hq, edge = sites
    app = apps[site]
    api_token = HQUsers(hq).new_token("powerless", "t")
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    walked = list(routes(app))
    assert len(walked) >= 6
    for endpoint, path, method, permission in walked:
        assert permission is not None, f"{endpoint} has no @requires"
        if permission == PUBLIC:
            continue
        anonymous = app.test_client()
        token = csrf(anonymous)
        response = anonymous.open(path, method=method, data={"csrf_token": token})
        if path.startswith("/api/"):
            assert response.status_code == 401, (endpoint, method)  # no token
        else:
            assert response.status_code == 302 and "/login" in response.headers["Location"], (endpoint, method)

        powerless = app.test_client()
        assert login(powerless, "powerless").status_code == 302
        token = csrf(powerless, "/login")
        if path.startswith("/api/"):
            response = powerless.open(path, method=method, headers={"Authorization": f"Bearer {api_token}"}, json={})
        else:
            response = powerless.open(path, method=method, data={"csrf_token": token})
        if permission == "customers.view":
            assert response.status_code in (200, 302, 404), (endpoint, method, response.status_code)
        else:
            assert response.status_code == 403, (endpoint, method, permission)


def test_login_is_checked_throttled_and_store_users_stay_in_their_store(sites):
    apps, _, _ = sites
    hq = apps["hq"].test_client()
    assert login(hq, "admin", "wrong password").status_code == 401
    assert login(hq, "till").status_code == 401  # a S001 user cannot log in at HQ
    assert login(apps["store"].test_client(), "till").status_code == 302  # ...but can at S001
    client = apps["hq"].test_client()
    for _ in range(5):
        login(client, "viewer", "nope")
    response = login(client, "viewer")  # right password, but locked out for now
    assert response.status_code == 401 and "Too many failed attempts" in response.get_data(as_text=True)
    assert login(apps["hq"].test_client(), "admin").status_code == 302


def test_forms_need_their_csrf_token(sites):
    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    response = client.post("/customers/new", data={"first_name": "Eve", "last_name": "Forged"})
    assert response.status_code == 400
    response = client.post("/customers/new", data={"first_name": "Eve", "last_name": "Forged", "csrf_token": "x"})
    assert response.status_code == 400


def test_a_bad_field_is_shown_next_to_it_and_nothing_typed_is_lost(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "clerk")
    token = csrf(client, "/customers/new")
    response = client.post("/customers/new", data={"csrf_token": token, "first_name": "Zoe", "last_name": "",
                                                    "email": "zoe-at-example", "city": "Málaga"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="err-last_name">Last name is required' in page
    assert 'id="err-email">Email is not a valid e-mail address' in page
    assert 'value="Zoe"' in page and 'value="Málaga"' in page and 'value="zoe-at-example"' in page
    response = client.post("/customers/new", data={"csrf_token": token, "first_name": "Zoe", "last_name": "Lane",
                                                    "email": "zoe@example.com", "payment_status": "valid",
                                                    "status": "open"})
    assert response.status_code == 302
    assert hq.conn.execute("SELECT count(*) FROM customers WHERE last_name = 'Lane'").fetchone()[0] == 1


def test_output_is_escaped(sites):
    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "viewer")
    page = client.get("/customers/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_a_cashier_may_add_but_not_edit_and_sees_no_edit_button(sites):
    apps, _, _ = sites
    client = apps["store"].test_client()
    login(client, "till")
    detail = client.get("/customers/CUST-00001")
    assert detail.status_code == 200 and "Deactivate" not in detail.get_data(as_text=True)
    assert client.get("/customers/CUST-00001/edit").status_code == 403
    token = csrf(client, "/customers/new")
    response = client.post("/customers/new", data={"csrf_token": token, "first_name": "Sam", "last_name": "Store",
                                                   "payment_status": "valid", "status": "open"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "CUST-00500" in page and "not yet confirmed by HQ" in page


def test_the_hq_stores_page_shows_every_store_and_its_state(sites):
    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    page = client.get("/stores/").get_data(as_text=True)
    assert "S001" in page and "Pending provisioning" in page
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert viewer.get("/stores/").status_code == 403


def test_possible_duplicates_are_reviewed_side_by_side_and_merged(sites):
    apps, hq, _ = sites
    one = hq.create_customer({"first_name": "Marta", "last_name": "Ruiz", "phone": "+34 600 123 456"}, "S001")
    two = hq.create_customer({"first_name": "Marta", "last_name": "Ruiz", "phone": "+34 600-123-456", "city": "Bilbao"}, "t")
    hq.add_card(two["id"], "CARD-77", "customer", "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    listing = client.get("/duplicates/").get_data(as_text=True)
    assert one["code"] in listing and two["code"] in listing and "same name and phone" in listing
    a, b = sorted((one["id"], two["id"]))
    review = client.get(f"/duplicates/{a}/{b}")
    assert review.status_code == 200 and "Bilbao" in review.get_data(as_text=True)
    token = csrf(client, f"/duplicates/{a}/{b}")
    response = client.post(f"/duplicates/{a}/{b}", data={"csrf_token": token, "action": "merge", "survivor": one["id"]})
    assert response.status_code == 302
    assert hq.find_customer(two["code"])["id"] == one["id"]  # the other code still finds the customer
    merged = hq.replica.get("customer", two["id"])
    assert merged["merged_into"] == one["id"] and merged["active"] is False
    assert hq.conn.execute("SELECT customer_id FROM cards WHERE number = 'CARD-77'").fetchone()[0] == one["id"]
    assert "Nothing to review" in client.get("/duplicates/").get_data(as_text=True)
    detail = client.get(f"/customers/{one['code']}").get_data(as_text=True)
    assert "Changes" in detail and "CARD-77" in detail


def test_the_hq_customer_page_shows_who_changed_what(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/customers/CUST-00001/edit")
    client.post("/customers/CUST-00001/edit", data={"csrf_token": token, "first_name": "Ann", "last_name": "Audit",
                                                    "city": "Vigo", "payment_status": "valid", "status": "open"})
    page = client.get("/customers/CUST-00001").get_data(as_text=True)
    assert "<li>City: Vigo</li>" in page and "<td>admin</td>" in page


def test_rates_are_edited_with_errors_by_field_and_the_price_check_uses_the_lane_function(sites, tmp_path):
    apps, hq, _ = sites

    csv = tmp_path / "p.csv"
    csv.write_text("sku,description,retail_price,barcodes\nMILK,Milk,1.20,8410000000011\n")
    import_file(hq, "products", csv, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/rates/")
    bad = client.post("/rates/", data={"csrf_token": token, "code": "vip", "name": "VIP", "start": "2026-13-01"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="err-start">Start must be a date YYYY-MM-DD' in page and 'value="vip"' in page
    ok = client.post("/rates/", data={"csrf_token": token, "code": "vip", "name": "VIP", "start": "2020-01-01"})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/rates/VIP")
    client.post("/rates/VIP", data={"csrf_token": token, "action": "line", "sku": "MILK", "price": "0",
                                    "discount_pct": "10"})
    hq.update_customer(hq.find_customer("CUST-00001")["id"], {"rate": "VIP"}, "t")
    page = client.get("/rates/?sku=8410000000011&customer=CUST-00001").get_data(as_text=True)
    assert "<strong>1.08</strong>" in page and "<strong>rate:VIP</strong>" in page
    page = client.get("/rates/?sku=MILK").get_data(as_text=True)
    assert "<strong>1.20</strong>" in page and "<strong>retail</strong>" in page
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert viewer.get("/rates/VIP").status_code == 200
    assert viewer.post("/rates/VIP", data={"csrf_token": csrf(viewer, "/rates/"), "action": "header",
                                           "name": "X"}).status_code == 403


def test_gdpr_export_and_erasure(sites):
    apps, hq, edge = sites
    ann = hq.find_customer("CUST-00001")
    hq.update_customer(ann["id"], {"email": "ann@example.com", "phone": "+34 600 111 222"}, "t")
    hq.add_card(ann["id"], "CARD-GDPR", "customer", "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    export = client.get("/gdpr/CUST-00001/export")
    data = export.get_json(force=True)
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    assert data["customer"]["email"] == "ann@example.com" and data["cards"][0]["number"] == "CARD-GDPR"
    assert data["changes"]
    token = csrf(client, "/customers/CUST-00001")
    client.post("/gdpr/CUST-00001/erase", data={"csrf_token": token, "confirm": "wrong"})
    assert hq.find_customer("CUST-00001")["email"] == "ann@example.com"  # not confirmed: nothing erased
    client.post("/gdpr/CUST-00001/erase", data={"csrf_token": token, "confirm": "CUST-00001"})
    erased = hq.find_customer("CUST-00001")
    assert (erased["code"], erased["email"], erased["phone"], erased["first_name"], erased["active"]) == \
        ("CUST-00001", "", "", "(erased)", False)
    assert hq.conn.execute("SELECT active FROM cards WHERE number = 'CARD-GDPR'").fetchone()[0] == 0
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))  # as replication delivers it
    assert edge.find_customer("CUST-00001")["email"] == ""
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert viewer.get("/gdpr/CUST-00001/export").status_code == 403


def test_a_store_is_registered_on_the_page_and_rejections_can_be_retried(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/stores/")
    page = client.post("/stores/", data={"csrf_token": token, "store": "S002"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'username = "S002"' in text
    password = re.search(r'password = "([^"]+)"', text).group(1)
    assert password not in client.get("/stores/").get_data(as_text=True)  # shown once
    again = client.post("/stores/", data={"csrf_token": token, "store": "S002"})
    assert again.status_code == 422 and "already registered" in again.get_data(as_text=True)

    change = {"id": "c0ffee00-0000-4000-8000-000000000001", "entity": "card",
              "key": "c0ffee00-0000-4000-8000-000000000002", "origin": "S001", "hlc": "1700000000000-000000", "by": "t",
              "fields": {"number": "CARD-LATE", "customer_id": hq.find_customer("CUST-00001")["id"], "kind": "customer",
                         "active": True}}
    hq.conn.execute("INSERT INTO rejections (change_id, store, entity, key, reason, change, rejected_at) "
                    "VALUES (?, 'S001', 'card', ?, 'was refused earlier', ?, '2026-11-25T10:00:00+00:00')",
                    (change["id"], change["key"], json.dumps(change)))
    assert "was refused earlier" in client.get("/stores/").get_data(as_text=True)
    response = client.post(f"/stores/rejections/{change['id']}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "Applied." in response.get_data(as_text=True)
    assert hq.conn.execute("SELECT count(*) FROM cards WHERE number = 'CARD-LATE'").fetchone()[0] == 1


def test_users_and_roles_are_managed_on_the_page(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/users/")
    bad = client.post("/users/", data={"csrf_token": token, "username": "Bad Name!", "password": "short", "name": "X"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="err-password"' in text and 'value="Bad Name!"' in text
    ok = client.post("/users/", data={"csrf_token": token, "username": "maria", "password": PASSWORD, "name": "María",
                                      "roles": ["store_manager"], "store": "S001"})
    assert ok.status_code == 302
    assert HQUsers(hq).get("maria")["roles"] == "store_manager"
    client.post("/users/maria", data={"csrf_token": token, "action": "toggle"})
    assert HQUsers(hq).get("maria")["active"] is False
    client.post("/users/roles", data={"csrf_token": token, "name": "auditor", "permissions": ["sync.view", "rates.view"]})
    assert "auditor" in client.get("/users/").get_data(as_text=True)
    assert "password_hash" not in client.get("/users/").get_data(as_text=True)
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert viewer.get("/users/").status_code == 403


def test_a_products_csv_is_previewed_before_it_is_imported(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/products/")
    csv = b"sku,description,retail_price,barcodes\nTEA,Green tea,2.10,8410000000099\n"
    import io

    preview = client.post("/products/import", data={"csrf_token": token, "file": (io.BytesIO(csv), "p.csv")},
                          content_type="multipart/form-data")
    text = preview.get_data(as_text=True)
    assert "csv -&gt; lanehub: added 1" in text and "Green tea" in text
    assert hq.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 0  # a preview changes nothing
    done = client.post("/products/import", data={"csrf_token": token, "confirm": "1", "file": (io.BytesIO(csv), "p.csv")},
                       content_type="multipart/form-data", follow_redirects=True)
    assert "added 1" in done.get_data(as_text=True) and "TEA" in done.get_data(as_text=True)
    bad = client.post("/products/import", data={"csrf_token": token, "confirm": "1",
                                                 "file": (io.BytesIO(b"sku,description,retail_price\nX,,abc\n"), "b.csv")},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and "b.csv line 2" in bad.get_data(as_text=True)


def test_the_customer_list_filters_by_origin_and_possible_duplicates_and_shows_households(sites):
    apps, hq, _ = sites
    from hq.coupons import HQCoupons

    a = hq.create_customer({"first_name": "Iker", "last_name": "Sanz", "email": "iker@example.com"}, "t")
    hq.create_customer({"first_name": "Iker", "last_name": "Sanz", "email": "iker@example.com"}, "t")
    household = HQCoupons(hq).create_household("Sanz family", a["code"], "t")
    b = hq.create_customer({"first_name": "Nerea", "last_name": "Sanz"}, "t")
    HQCoupons(hq).set_household(b["code"], household["id"], "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    dupes = client.get("/customers/?status=all&duplicates=1").get_data(as_text=True)
    assert dupes.count("Iker") == 2 and "Nerea" not in dupes
    assert "Iker" in client.get("/customers/?origin=HQ").get_data(as_text=True)
    assert "Iker" not in client.get("/customers/?origin=S009").get_data(as_text=True)
    detail = client.get(f"/customers/{a['code']}").get_data(as_text=True)
    assert "Sanz family" in detail and "head of the household" in detail and "Nerea" in detail


def test_a_product_page_sets_specific_prices_that_the_price_check_uses(sites, tmp_path):
    apps, hq, _ = sites

    csv = tmp_path / "p.csv"
    csv.write_text("sku,description,retail_price,barcodes\nSOAP,Hand soap,2.49,8714789734319\n")
    import_file(hq, "products", csv, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    page = client.get("/products/SOAP").get_data(as_text=True)
    assert "8714789734319" in page and "2.49" in page
    token = csrf(client, "/products/SOAP")
    bad = client.post("/products/SOAP", data={"csrf_token": token, "price": "abc", "store": "S001"})
    assert bad.status_code == 422 and 'id="err-price">Price must be an amount' in bad.get_data(as_text=True)
    client.post("/products/SOAP", data={"csrf_token": token, "price": "1.99", "store": "S001"})
    check = client.get("/rates/?sku=SOAP&store=S001").get_data(as_text=True)
    assert "<strong>1.99</strong>" in check and "<strong>specific</strong>" in check


@pytest.mark.parametrize("path", ["/customers/", "/customers/CUST-00001", "/stores/", "/duplicates/", "/rates/",
                                  "/products/", "/users/", "/customers/new"])
def test_every_page_has_one_plain_title_and_one_body(sites, path):
    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    page = client.get(path).get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "<" not in title and len(title) < 120, title
    assert page.count("<main>") == 1 and page.count("</html>") == 1
