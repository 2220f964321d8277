"""`/api/v1/` on both sites: token auth with the pages' permissions, JSON
errors with a field map, the OpenAPI document matches the routes, and
generated bad input never makes a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq.users import HQUsers

API_ROUTES_MIN = 10


@pytest.fixture
def tokens(sites):
    apps, hq, edge = sites
    users = HQUsers(hq)
    out = {name: users.new_token(name, "t") for name in ("admin", "viewer", "till")}
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    return out


def call(app, method, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = app.test_client()
    return client.open(path, method=method, headers=headers, data=None if body is None else json.dumps(body),
                       content_type="application/json")


def test_the_openapi_document_matches_the_routes(sites):
    apps, _, _ = sites
    for app in apps.values():
        doc = call(app, "GET", "/api/v1/openapi.json").get_json()
        documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
        routed = set()
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.openapi":
                path = rule.rule.replace("<", "{").replace(">", "}")
                routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
        assert documented == routed and len(routed) >= API_ROUTES_MIN - 3
        for ops in doc["paths"].values():
            for op in ops.values():
                view = app.view_functions["api." + op["operationId"]]
                assert view.permission == op["x-permission"]


def test_tokens_carry_the_users_permissions(sites, tokens):
    apps, _, _ = sites
    hq = apps["hq"]
    assert call(hq, "GET", "/api/v1/customers").status_code == 401
    assert call(hq, "GET", "/api/v1/customers", "lh_wrong").status_code == 401
    assert call(hq, "GET", "/api/v1/customers", tokens["viewer"]).status_code == 200
    assert call(hq, "POST", "/api/v1/customers", tokens["viewer"], {"first_name": "A", "last_name": "B"}).status_code == 403
    assert call(hq, "GET", "/api/v1/stores", tokens["viewer"]).status_code == 403
    assert call(hq, "GET", "/api/v1/stores", tokens["admin"]).get_json()["stores"][0]["id"] == "S001"
    assert call(hq, "GET", "/api/v1/customers", tokens["till"]).status_code == 401  # a store user, at HQ
    assert call(apps["store"], "GET", "/api/v1/customers", tokens["till"]).status_code == 200


def test_customers_through_the_api_with_field_errors(sites, tokens):
    apps, _, _ = sites
    hq, token = apps["hq"], tokens["admin"]
    bad = call(hq, "POST", "/api/v1/customers", token, {"first_name": "Ana", "email": "nope", "code": "X"})
    assert bad.status_code == 422
    assert set(bad.get_json()["fields"]) == {"code"}
    bad = call(hq, "POST", "/api/v1/customers", token, {"first_name": "Ana", "email": "nope"})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"email", "last_name"}
    made = call(hq, "POST", "/api/v1/customers", token, {"first_name": "Ana", "last_name": "Api", "phone": "+34 600 000 001"})
    assert made.status_code == 201
    code = made.get_json()["code"]
    assert call(hq, "GET", f"/api/v1/customers/{code}", token).get_json()["last_name"] == "Api"
    assert call(hq, "PATCH", f"/api/v1/customers/{code}", token, {"city": "León"}).get_json()["city"] == "León"
    assert call(hq, "POST", f"/api/v1/customers/{code}/deactivate", token).get_json()["active"] is False
    assert call(hq, "GET", "/api/v1/customers?q=Api", token).get_json()["customers"] == []  # search: active only
    assert call(hq, "GET", "/api/v1/customers/NOPE-1", token).status_code == 404
    assert call(hq, "POST", "/api/v1/sales/S001-L1-99/track", token, {"customer": code}).status_code == 409


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from([("POST", "/api/v1/customers"), ("PATCH", "/api/v1/customers/CUST-00001"),
                           ("POST", "/api/v1/sales/S001-L1-1/track"), ("GET", "/api/v1/customers?limit=abc"),
                           ("GET", "/api/v1/customers?q=%00%ff"), ("GET", "/api/v1/products?offset=-5")]),
    body=st.one_of(st.none(), st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c,
                                                                                             max_size=4), max_leaves=8),
                   st.dictionaries(st.sampled_from(["first_name", "last_name", "email", "no_paper", "phone", "customer"]),
                                   st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none()))),
)
def test_generated_bad_input_never_makes_a_500(sites, tokens, route, body):
    apps, _, _ = sites
    method, path = route
    response = call(apps["hq"], method, path, tokens["admin"], body)
    assert response.status_code < 500, (method, path, body, response.get_data(as_text=True)[:300])
    assert response.is_json
