"""`/api/v1/` for integrators, on both sites: bearer-token authentication with
the same permissions as the pages, JSON errors with a field map, and an
OpenAPI document built from the same table that registers the routes, so the
two cannot disagree."""

from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, abort, g, jsonify, request, url_for

from lanehub.domain.extra_fields import declared, extras_of
from lanehub.domain.model import CUSTOMER_EDITABLE, ValidationError
from lanehub.domain.ownership import field_rules, owned_fields
from lanehub.domain.payment_cards import payment_card_errors
from lanehub.domain.references import rate_errors
from lanehub.domain.sales import SaleError, purchase_history, track_sale
from lanehub.domain.search import search_customers
from lanehub.web.app import requires

CUSTOMER_SCHEMA = {
    "type": "object",
    "properties": {name: ({"type": "boolean"} if name == "no_paper" else {"type": "string"}) for name in CUSTOMER_EDITABLE}
    | {"extra": {"type": "object", "additionalProperties": {"type": "string"},
                 "description": "Declared extra fields by name (GET /extra-fields)"}},
    "additionalProperties": False,
}
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
                "required": ["error"]}


class Api:
    """Routes and their OpenAPI description, registered together."""

    def __init__(self, title: str):
        self.bp = Blueprint("api", __name__, url_prefix="/api/v1")
        self.title = title
        self.paths: dict[str, dict] = {}
        self.bp.add_url_rule("/openapi.json", "openapi", requires("public")(self.openapi))

    def route(self, rule: str, method: str, permission: str, summary: str, *, body: dict | None = None,
              query: tuple[str, ...] = ()):
        def register(view: Callable):
            endpoint = f"{method.lower()}_{view.__name__}"
            self.bp.add_url_rule(rule, endpoint, requires(permission)(view), methods=[method])
            path = "/api/v1" + rule.replace("<", "{").replace(">", "}")
            params = [{"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                      for p in _placeholders(rule)]
            params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
            operation: dict[str, Any] = {
                "summary": summary, "operationId": endpoint, "parameters": params,
                "security": [{"bearer": []}], "x-permission": permission,
                "responses": {"200": {"description": "OK"},
                              "401": {"description": "no or bad token", "content": _json(ERROR_SCHEMA)},
                              "403": {"description": f"needs {permission}", "content": _json(ERROR_SCHEMA)},
                              "404": {"description": "not found", "content": _json(ERROR_SCHEMA)}}}
            if body is not None:
                operation["requestBody"] = {"required": True, "content": _json(body)}
                operation["responses"]["422"] = {"description": "invalid fields", "content": _json(ERROR_SCHEMA)}
            self.paths.setdefault(path, {})[method.lower()] = operation
            return view
        return register

    def openapi(self):
        return jsonify({
            "openapi": "3.0.3",
            "info": {"title": self.title, "version": "1"},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "paths": self.paths,
        })


def _placeholders(rule: str) -> list[str]:
    import re

    return re.findall(r"<[a-z_]+>", rule)


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "the body must be a JSON object")
    return data


def invalid(exc: ValidationError):
    return jsonify({"error": "invalid fields", "fields": exc.errors}), 422


def customer_api(api: Api, refusals: tuple = ()) -> None:
    """The customer, sale, product and rate routes both sites have."""

    @api.route("/customers", "GET", "customers.view", "List or search customers (q: name, code, phone, e-mail, "
               "postcode or card)", query=("q", "limit", "offset"))
    def customers():
        limit = _int_arg("limit", 50, 1, 500)
        q = request.args.get("q", "").strip()
        refused = payment_card_errors({"q": q})  # not searched for, not echoed (lanehub.domain.payment_cards)
        if refused:
            return invalid(ValidationError(refused))
        if q:
            return jsonify({"customers": search_customers(g.db.conn, q, min(limit, 100))})
        keys = [r[0] for r in g.db.conn.execute("SELECT id FROM customers ORDER BY code LIMIT ? OFFSET ?",
                                                 (limit, _int_arg("offset", 0, 0, 10**9)))]
        return jsonify({"customers": [g.db.replica.get("customer", k) for k in keys]})

    @api.route("/customers", "POST", "customers.create", "Create a customer (its code is assigned at once)",
               body=CUSTOMER_SCHEMA)
    def create_customer():
        try:
            fields, extra = _customer_fields(json_body())
            record = g.db.create_customer(fields, "api:" + g.user["username"], extra=extra)
        except ValidationError as exc:
            return invalid(exc)
        except refusals as exc:
            return jsonify({"error": str(exc)}), 503
        return jsonify(record), 201, {"Location": url_for("api.get_customer", ref=record["id"])}

    @api.route("/extra-fields", "GET", "customers.view", "The declared extra customer fields and who owns which fields")
    def extra_fields():
        return jsonify({"extra_fields": [{"name": n, "label": label} for n, label in declared(g.db.conn).items()],
                        "owned_fields": {r.field: r.owner for r in field_rules(g.db.conn, "customer").values() if r.owner}})

    @api.route("/customers/<ref>", "GET", "customers.view", "One customer by id or code")
    def customer(ref):
        record = _found(ref)
        # Which fields an external system keeps (a PATCH of one is refused), and which one.
        return jsonify(record | {"extra": extras_of(g.db.conn, record["id"]),
                                 "owned_fields": owned_fields(g.db.conn, "customer", record)})

    @api.route("/customers/<ref>", "PATCH", "customers.edit", "Change fields of a customer", body=CUSTOMER_SCHEMA)
    def update_customer(ref):
        record = _found(ref)
        fields, extra = _customer_fields(json_body())
        try:
            return jsonify(g.db.update_customer(record["id"], fields, "api:" + g.user["username"], extra=extra))
        except ValidationError as exc:
            return invalid(exc)

    @api.route("/customers/<ref>/deactivate", "POST", "customers.edit", "Deactivate a customer")
    def deactivate(ref):
        return _set_active(ref, False)

    @api.route("/customers/<ref>/reactivate", "POST", "customers.edit", "Reactivate a customer")
    def reactivate(ref):
        return _set_active(ref, True)

    def _set_active(ref: str, active: bool):
        try:
            return jsonify(g.db.update_customer(_found(ref)["id"], {"active": active}, "api:" + g.user["username"]))
        except ValidationError as exc:  # 'active' kept by an external system
            return invalid(exc)

    @api.route("/customers/<ref>/sales", "GET", "customers.view", "A customer's purchases, newest first",
               query=("limit",))
    def customer_sales(ref):
        return jsonify({"sales": purchase_history(g.db.conn, _found(ref)["id"], _int_arg("limit", 20, 1, 200))})

    @api.route("/sales/<ticket>/track", "POST", "sales.track", "Attach a closed sale without a customer to one",
               body={"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]})
    def track(ticket):
        customer = json_body().get("customer")
        if not isinstance(customer, str) or not customer:
            return invalid(ValidationError({"customer": "is required"}))
        try:
            sale = track_sale(g.db, ticket, customer, "api:" + g.user["username"])
        except SaleError as exc:
            return jsonify({"error": str(exc)}), 409
        return jsonify({"ticket": sale["ticket"], "customer_id": sale["customer_id"]})

    @api.route("/products", "GET", "rates.view", "Products by SKU", query=("limit", "offset"))
    def products():
        rows = g.db.conn.execute("SELECT sku, description, brand, size, retail_price, tax_rate, active FROM products "
                                 "ORDER BY sku LIMIT ? OFFSET ?",
                                 (_int_arg("limit", 100, 1, 1000), _int_arg("offset", 0, 0, 10**9))).fetchall()
        return jsonify({"products": [dict(r) | {"active": bool(r["active"])} for r in rows]})

    @api.route("/rates", "GET", "rates.view", "Rates with their lines")
    def rates():
        out = []
        for rate in g.db.conn.execute("SELECT id, code, name, start, [end], status FROM rates ORDER BY code").fetchall():
            lines = g.db.conn.execute("SELECT p.sku, l.price, l.discount_pct FROM rate_lines l JOIN products p "
                                      "ON p.id = l.product_id WHERE l.rate_id = ? AND l.active = 1 ORDER BY p.sku",
                                      (rate["id"],)).fetchall()
            out.append({k: rate[k] for k in ("code", "name", "start", "end", "status")} | {"lines": [dict(r) for r in lines]})
        return jsonify({"rates": out})


def _customer_fields(data: dict) -> tuple[dict, dict]:
    """(the customer's fields, its declared extra values) of a request body."""
    data = dict(data)
    extra = data.pop("extra", None) or {}
    unknown = sorted(set(data) - set(CUSTOMER_EDITABLE))
    if unknown:
        raise_invalid({name: "is not a field you can set" for name in unknown})
    if not isinstance(extra, dict):
        raise_invalid({"extra": "must be an object of declared extra fields"})
    refused = payment_card_errors(data) | {f"extra.{k}": v for k, v in payment_card_errors(extra).items()}
    if refused:  # the masked number only, in the field's error (lanehub.domain.payment_cards)
        raise_invalid(refused)
    if isinstance(data.get("rate"), str):  # another type is the field checks' to refuse
        unknown_rate = rate_errors(g.db.conn, data)
        if unknown_rate:
            raise_invalid(unknown_rate)
    return data, extra


def raise_invalid(errors: dict):
    from flask import make_response

    abort(make_response(jsonify({"error": "invalid fields", "fields": errors}), 422))


def _found(ref: str) -> dict:
    record = g.db.find_customer(ref)
    if record is None:
        abort(404)
    return record


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        abort(400, f"'{name}' must be a whole number")
    return max(low, min(high, value))
