#!/usr/bin/python3
"""Keep a Mosquitto 2 password file in step with users given as JSON on stdin.

Usage: lanehub-mosquitto-users PASSWD_FILE GROUP < {"user": "password", ...}

Prints "unchanged" when every user is already there with that password (checked
against the stored PBKDF2-SHA512 hash) and no other user is; otherwise writes
the file (mode 0640 root:GROUP, fsynced, renamed into place) and prints
"changed". Passwords never appear on a command line or in a file.
"""

import base64
import grp
import hashlib
import hmac
import json
import os
import secrets
import sys

ITERATIONS = 101  # what mosquitto_passwd 2.0 writes


def hashed(password, salt, iterations=ITERATIONS):
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return "$7${}${}${}".format(iterations, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def matches(password, stored):
    try:
        _, kind, iterations, salt, _digest = stored.split("$")
        if kind != "7":
            return False
        return hmac.compare_digest(hashed(password, base64.b64decode(salt), int(iterations)), stored)
    except ValueError:
        return False


def read(path):
    try:
        with open(path) as fh:
            return dict(line.rstrip("\n").split(":", 1) for line in fh if ":" in line)
    except FileNotFoundError:
        return {}


def main():
    path, group = sys.argv[1], sys.argv[2]
    users = json.load(sys.stdin)
    for name in users:
        if not name or ":" in name or "\n" in name:
            sys.exit(f"invalid broker user name {name!r}")
    current = read(path)
    if set(current) == set(users) and all(matches(users[u], current[u]) for u in users):
        print("unchanged")
        return
    tmp = f"{path}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for name in sorted(users):
            fh.write(f"{name}:{hashed(users[name], secrets.token_bytes(12))}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chown(tmp, 0, grp.getgrnam(group).gr_gid)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
    print("changed")


if __name__ == "__main__":
    main()
