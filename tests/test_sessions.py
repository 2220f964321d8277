"""Web sessions end when they should, on the HQ Manager and on the store page:
logging out ends that session for every copy of its cookie; a password change,
a role change or a deactivation at HQ ends every session of that user (at a
store once the change has replicated); no session outlives 8 hours; and a
login does the same password work whether or not the user name exists."""

from __future__ import annotations

import shutil

import pytest
from helpers import db_query, edge_db, wait_until
from web_sites import PASSWORD, csrf, login

import lanehub.web.app
from hq.users import HQUsers

NEW_PASSWORD = "a brand new passphrase"


def cookie_of(client) -> str:
    return client.get_cookie("session").value


def client_with(app, cookie: str):
    """Another browser holding a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def logged_in(client) -> bool:
    response = client.get("/customers/")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and "/login" in response.headers["Location"], response.status_code
    return False


def replicate(hq, edge) -> None:
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))


@pytest.mark.parametrize("site", ["hq", "store"])
def test_a_cookie_saved_before_logout_does_not_work_after_it(sites, site):
    apps, _, _ = sites
    app = apps[site]
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    saved = cookie_of(client)
    other = app.test_client()
    assert login(other, "admin").status_code == 302  # the same user in another browser
    assert logged_in(client_with(app, saved))
    assert client.post("/logout", data={"csrf_token": csrf(client, "/customers/")}).status_code == 302
    assert not logged_in(client)
    assert not logged_in(client_with(app, saved))  # the copy made before logout
    assert logged_in(other)  # logging out ends this session, not the user's others


@pytest.mark.parametrize("change", ["password", "roles", "deactivate"])
def test_a_password_role_or_active_change_ends_the_users_sessions_at_hq_and_then_at_the_store(sites, change):
    apps, hq, edge = sites
    at_hq, at_store = apps["hq"].test_client(), apps["store"].test_client()
    assert login(at_hq, "clerk").status_code == 302 and login(at_store, "clerk").status_code == 302
    hq_cookie, store_cookie = cookie_of(at_hq), cookie_of(at_store)
    admin = apps["hq"].test_client()
    login(admin, "admin")
    form = {"password": {"action": "password", "password": NEW_PASSWORD},
            "roles": {"action": "roles", "roles": "viewer"},
            "deactivate": {"action": "toggle"}}[change]
    response = admin.post("/users/clerk", data={"csrf_token": csrf(admin, "/users/"), **form}, follow_redirects=True)
    assert "User clerk saved." in response.get_data(as_text=True)

    assert not logged_in(at_hq) and not logged_in(client_with(apps["hq"], hq_cookie))
    # The store ends it once the change has replicated (seconds, or when its HQ link is back).
    assert logged_in(client_with(apps["store"], store_cookie))
    replicate(hq, edge)
    assert not logged_in(at_store) and not logged_in(client_with(apps["store"], store_cookie))
    assert logged_in(admin)  # other users' sessions go on
    if change == "deactivate":  # letting the user in again does not bring the old sessions back
        admin.post("/users/clerk", data={"csrf_token": csrf(admin, "/users/"), "action": "toggle"})
        replicate(hq, edge)
        assert not logged_in(client_with(apps["hq"], hq_cookie)) and not logged_in(client_with(apps["store"], store_cookie))
    else:  # logging in again works (with the new password)
        again = apps["store"].test_client()
        assert login(again, "clerk", NEW_PASSWORD if change == "password" else PASSWORD).status_code == 302
        assert logged_in(again)


def test_changing_your_own_password_keeps_this_session_and_ends_your_others(sites):
    apps, _, _ = sites
    here, elsewhere = apps["hq"].test_client(), apps["hq"].test_client()
    login(here, "admin")
    login(elsewhere, "admin")
    response = here.post("/users/admin", data={"csrf_token": csrf(here, "/users/"), "action": "password",
                                               "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert logged_in(here) and not logged_in(elsewhere)


def test_the_cli_password_change_ends_the_sessions_too(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "viewer")
    HQUsers(hq).update("viewer", "cli", password=NEW_PASSWORD)  # what `lanehub hq users password` calls
    assert not logged_in(client)
    HQUsers(hq).update("viewer", "cli", name="Vera Viewer")  # a new name ends nothing
    login(client, "viewer", NEW_PASSWORD)
    HQUsers(hq).update("viewer", "cli", name="Vera V.")
    assert logged_in(client)


@pytest.mark.parametrize("site", ["hq", "store"])
def test_no_session_outlives_eight_hours_even_with_a_fresh_cookie(sites, site):
    apps, hq, edge = sites
    client = apps[site].test_client()
    login(client, "admin")
    assert logged_in(client)  # the signed cookie is re-issued on every request...
    db = hq if site == "hq" else edge
    db.conn.execute("UPDATE web_sessions SET created_at = created_at - 8 * 3600 - 1")
    assert not logged_in(client)  # ...but the session began more than 8 hours ago


def test_a_login_does_the_same_password_work_for_unknown_and_known_user_names(sites, monkeypatch):
    apps, hq, _ = sites
    HQUsers(hq).update("powerless", "t", active=False)
    checked = []
    real = lanehub.web.app.check_password_hash

    def counting(stored, password):
        checked.append(stored.split("$")[0])  # the method and its parameters, e.g. scrypt:32768:8:1
        return real(stored, password)

    monkeypatch.setattr(lanehub.web.app, "check_password_hash", counting)
    client = apps["hq"].test_client()
    attempts = [("nosuchuser", PASSWORD), ("admin", "wrong password"), ("powerless", PASSWORD),  # deactivated
                ("till", PASSWORD)]  # a store user at HQ
    for username, password in attempts:
        checked.clear()
        assert login(client, username, password).status_code == 401
        assert checked == ["scrypt:32768:8:1"], username  # one hash check, with the real hashes' parameters
    checked.clear()
    assert login(client, "admin").status_code == 302 and checked == ["scrypt:32768:8:1"]


def test_the_session_cookie_carries_no_user_name(sites):
    from flask.sessions import SecureCookieSessionInterface

    apps, _, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    serializer = SecureCookieSessionInterface().get_signing_serializer(apps["hq"])
    contents = serializer.loads(cookie_of(client))
    assert "admin" not in repr(contents) and set(contents) <= {"sid", "csrf", "_fresh", "_permanent", "_flashes"}


# --- real processes and a real browser -------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser():
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_in_a_browser_logout_and_a_password_change_at_hq_end_store_sessions(browser, make_chain):
    chain = make_chain(stores=("S001",))
    chain.hq_cli("users", "add", "carl", "--role", "cashier", "--store", "S001", "--password-stdin",
                 input=PASSWORD + "\n")
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT count(*) FROM users")[0][0] == 1, 20,
               message="the user at the store")
    store = f"http://127.0.0.1:{chain.web_ports['S001']}"

    def log_in(context):
        page = context.new_page()
        page.goto(store + "/login")
        page.fill("input[name=username]", "carl")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(store + "/customers/")
        return page

    def copy_of(context):
        other = browser.new_context()
        other.add_cookies(context.cookies())
        return other

    def shows_login(context) -> bool:
        page = context.new_page()
        page.goto(store + "/customers/")
        shown = page.url.startswith(store + "/login")
        page.close()
        return shown

    first = browser.new_context()
    page = log_in(first)
    saved = copy_of(first)
    assert not shows_login(saved)
    page.click("button:has-text('Log out')")
    page.wait_for_url(store + "/login")
    assert shows_login(saved)  # the cookie copied before logout

    second = browser.new_context()
    log_in(second)
    chain.hq_cli("users", "password", "carl", "--password-stdin", input=NEW_PASSWORD + "\n")
    wait_until(lambda: shows_login(second), 30, 0.5, message="the store session ended after the password change")
