"""Walk a running lanehub web app over real HTTP: log in through the login form
(with its CSRF token), GET every page, report each page's status.

Nothing here knows about fixtures, brokers or where lanehub is installed, so
it serves for a wheel installed in a scratch venv (tests/test_wheel.py) as
well as for the pages of a provisioned box:

    routes = list_routes("/opt/lanehub/venv/bin/python", "hq")
    paths, missing = expand(routes, {"/customers/<ref>": [{"ref": "CUST-00001"}]})
    opener = login("http://127.0.0.1:8800", "admin", password)
    statuses = walk("http://127.0.0.1:8800", opener, paths, token=api_token)
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterable, Sequence

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ARGUMENT_RE = re.compile(r"<(?:(?P<converter>[a-z_]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")

# Run by the python that serves the site (stdin, `python -I -`): builds the app
# from the real config loader on scratch databases in a temporary directory
# (removed again; a box's own config and database are never opened), prints
# every GET rule.
_LIST_SCRIPT = r'''
import json, sys, tempfile
from pathlib import Path

site = sys.argv[1]
with tempfile.TemporaryDirectory(prefix="lanehub-routes-") as scratch:
    work = Path(scratch)
    if site == "hq":
        from hq.config import load_config
        from hq.web.app import create_app
        (work / "hq.toml").write_text('[hq]\ndb = "hq.db"\n')
        app = create_app(load_config(work / "hq.toml"))
    elif site == "edge":
        from edge.config import load_config
        from edge.web.app import create_app
        (work / "edge.toml").write_text('[store]\nid = "S001"\ndb = "S001.db"\n')
        app = create_app(load_config(work / "edge.toml"))
    else:
        sys.exit(f"site must be hq or edge, not {site!r}")
rules = []
for rule in app.url_map.iter_rules():
    if "GET" not in rule.methods:
        continue
    view = app.view_functions[rule.endpoint]
    rules.append({"rule": rule.rule, "endpoint": rule.endpoint, "arguments": sorted(rule.arguments),
                  "permission": getattr(view, "permission", None)})
print(json.dumps(sorted(rules, key=lambda r: r["rule"])))
'''


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the page's answer instead of following it: a page
    that bounces to /login is a lost session, not a page that rendered."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def list_routes(python: str | Sequence[str], site: str, timeout: float = 60) -> list[dict]:
    """Every GET rule of a site's web app ("hq" or "edge") as that python sees it:
    ``[{"rule": "/customers/<ref>", "endpoint": ..., "arguments": ["ref"],
    "permission": ...}]``. ``python`` is an interpreter path or a command prefix
    (e.g. ``["ssh", "box", "/opt/lanehub/venv/bin/python"]``); it runs isolated
    (``-I``) in a scratch directory, so no source tree leaks onto its path."""
    command = [python] if isinstance(python, str) else list(python)
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run([*command, "-I", "-", site], input=_LIST_SCRIPT, capture_output=True, text=True,
                                timeout=timeout, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"listing the {site} routes failed ({result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def fill(rule: str, values: dict[str, str]) -> str:
    """``/customers/<ref>`` with ``{"ref": "CUST-00001"}`` -> ``/customers/CUST-00001``."""
    def value(match):
        name = match["name"]
        if name not in values:
            raise KeyError(f"{rule}: no value for <{name}>")
        return urllib.parse.quote(str(values[name]), safe="/" if match["converter"] == "path" else "")

    return ARGUMENT_RE.sub(value, rule)


def expand(routes: Iterable[dict], fills: dict[str, list[dict[str, str]]]) -> tuple[list[str], list[str]]:
    """The paths to walk: rules without arguments as they are, rules with
    arguments once per value set in ``fills[rule]``. Returns (paths, the rules
    with arguments that ``fills`` has no values for)."""
    paths, missing = [], []
    for route in routes:
        if not route["arguments"]:
            paths.append(route["rule"])
        elif fills.get(route["rule"]):
            paths += [fill(route["rule"], values) for values in fills[route["rule"]]]
        else:
            missing.append(route["rule"])
    return paths, missing


def opener_for(cookies: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies or http.cookiejar.CookieJar()),
                                       NoRedirect())


def get(opener, url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET; error statuses are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def login(base_url: str, username: str, password: str, timeout: float = 30) -> urllib.request.OpenerDirector:
    """An opener holding a logged-in session: the login page's CSRF token, then
    the form posted as a browser would. Raises if the site does not take it."""
    base_url = base_url.rstrip("/")
    opener = opener_for()
    status, _, body = get(opener, base_url + "/login", timeout=timeout)
    token = CSRF_RE.search(body.decode("utf-8", "replace"))
    if status != 200 or token is None:
        raise RuntimeError(f"{base_url}/login answered {status} without a CSRF token")
    form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token.group(1)}).encode()
    request = urllib.request.Request(base_url + "/login", data=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with opener.open(request, timeout=timeout) as response:
            status, location = response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        with exc:
            status, location = exc.code, exc.headers.get("Location", "")
    if status != 302 or "/login" in location:
        raise RuntimeError(f"logging in to {base_url} as {username} failed: {status} {location}".rstrip())
    return opener


def walk(base_url: str, opener, paths: Iterable[str], token: str | None = None,
         timeout: float = 30) -> dict[str, int]:
    """GET every path with the opener's session; ``/api/`` paths with the bearer
    ``token`` instead when one is given (the API takes no session). Returns
    ``{path: status}``; redirects are not followed."""
    base_url = base_url.rstrip("/")
    statuses = {}
    for path in paths:
        headers = {"Authorization": f"Bearer {token}"} if token and path.startswith("/api/") else {}
        statuses[path] = get(opener, base_url + path, headers, timeout)[0]
    return statuses
