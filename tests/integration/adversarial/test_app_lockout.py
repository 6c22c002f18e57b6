"""Lockouts (issue 10, item 5): failures count per (user, address) with backoff; many
distinct users from one address lock that address for new names only; a right password is
never refused because someone else failed; every 429 carries Retry-After."""
import requests

from dgtest.attack_app import SERVICE, app_setup, error_code


def login(app, user, password):
    base = app.route("path", "team-a").base
    return requests.get(base + "/v2/token", params={"service": SERVICE}, auth=(user, password),
                        verify=app.ca, timeout=30)


def test_one_clients_failures_lock_only_that_user_at_that_address(dockgate, registry_factory,
                                                                  unique):
    app = app_setup(dockgate, registry_factory, unique("lock"),
                    auth_extra={"max_failures": 3, "lockout_seconds": 60,
                                "max_users_per_address": 50})
    # Attack: a stale CI password (or a guesser) against alice's account.
    got = [login(app, "alice", f"wrong-{i}").status_code for i in range(3)]
    assert got == [401, 401, 401], got
    r = login(app, "alice", app.users["alice"])
    assert (r.status_code, error_code(r.content)) == (429, ["TOOMANYREQUESTS"]), r.text
    assert 50 <= int(r.headers["Retry-After"]) <= 60, r.headers
    r = login(app, "alice", "wrong-again")  # still locked (the backoff is unit-tested)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.headers
    # Everyone else behind the same address logs in.
    for user in ("bob", "carol"):
        assert login(app, user, app.users[user]).status_code == 200, user


def test_credential_stuffing_locks_new_names_not_known_users(dockgate, registry_factory, unique):
    app = app_setup(dockgate, registry_factory, unique("stuff"),
                    auth_extra={"max_failures": 5, "lockout_seconds": 60,
                                "max_users_per_address": 4})
    assert login(app, "bob", app.users["bob"]).status_code == 200  # bob used this address
    # Attack: one guess each for many user names from one address.
    got = [login(app, f"victim{i}", "guess").status_code for i in range(4)]
    assert got == [401] * 4, got
    r = login(app, "carol", app.users["carol"])  # a name not seen from here before
    assert (r.status_code, error_code(r.content)) == (429, ["TOOMANYREQUESTS"]), r.text
    assert int(r.headers["Retry-After"]) > 0
    assert login(app, "bob", app.users["bob"]).status_code == 200
