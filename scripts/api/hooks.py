"""schemathesis hooks for scripts/test-api.

A session for every phase: the bearer token comes from `POST /api/token` with the phase's
account (API_USERNAME, API_PASSWORD) and is fetched again whenever an answer is 401. Logout and
password change revoke every token of the account, and the run goes on with a new one instead of
testing the rest unauthenticated.

Password changes: one positive `PUT /api/users/me` in four is sent with the account's real
password and a new one the policy accepts, so the change itself (200, a fresh token, every other
token revoked) is tested, not only its refusals. The account's password then is the new one: the
next sign-in uses it, and it is written to API_PASSWORD_FILE for the script.

The password policy: JSON Schema can state a new password's length and characters, not that it
is common, repetitive, a sequence or built on the username. `openapi.yaml` states those rules in
words and their data in `x-password-policy`; a schema-valid registration the policy would refuse
gets, in positive cases only, a password that passes, so "valid data accepted" is checked on
requests the document calls valid. Negative cases are sent as generated.
"""

import hashlib
import os
import threading

import requests
import schemathesis
import yaml

BASE_URL = os.environ["API_BASE_URL"]
USERNAME = os.environ["API_USERNAME"]
PASSWORD_FILE = os.environ["API_PASSWORD_FILE"]

_DOC = yaml.safe_load(requests.get(f"{BASE_URL}/api/openapi.yaml", timeout=30).text)
_NEW_PASSWORD = _DOC["components"]["schemas"]["NewPassword"]
_POLICY = _NEW_PASSWORD["x-password-policy"]
_COMMON = set(_POLICY["common-words"])

_lock = threading.Lock()
# The account as the server has it now: its password, the ones it may not go back to, its e-mail.
_account = {"password": os.environ["API_PASSWORD"], "used": [], "email": None, "changes": 0}


def _remember(password):
    with _lock:
        _account["used"] = (_account["used"] + [_account["password"]])[-_POLICY["history-depth"] :]
        _account["password"] = password
        with open(PASSWORD_FILE, "w") as f:
            f.write(password)


@schemathesis.auth(refresh_interval=600)
class Session:
    def get(self, case, context):
        with _lock:
            password = _account["password"]
        r = requests.post(
            f"{BASE_URL}/api/token",
            json={"username": USERNAME, "password": password},
            timeout=30,
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        if _account["email"] is None:
            me = requests.get(f"{BASE_URL}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            me.raise_for_status()
            _account["email"] = me.json()["email"]
        return token

    def set(self, case, token, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


def _is_sequence(s):
    b = s.encode("utf-8", "surrogatepass")
    return len(b) > 1 and all(y == (x + 1) % 256 or y == (x - 1) % 256 for x, y in zip(b, b[1:]))


def _weak_remainder(rest):
    return len(rest) < 8 or len(set(rest)) < 5 or _is_sequence(rest)


def passes_policy(password, username, email):
    """The policy of `NewPassword`'s description, erring on the side of refusing."""
    if not _NEW_PASSWORD["minLength"] <= len(password) <= _NEW_PASSWORD["maxLength"]:
        return False
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in password):
        return False
    if len(set(password)) < _POLICY["min-distinct-chars"]:
        return False
    lower = password.lower()
    letters = "".join(c for c in lower if c.isalpha())
    if not letters or letters in _COMMON or _is_sequence(lower):
        return False
    for personal in (username.lower(), email.split("@")[0].lower()):
        if len(personal) >= 3 and personal in lower and _weak_remainder(lower.replace(personal, "")):
            return False
    return True


def _strong(seed, username, email, refused=()):
    """A password the policy accepts, derived from `seed` (so a run stays reproducible)."""
    for salt in range(1000):
        candidate = "Qz7!" + hashlib.sha256(seed + salt.to_bytes(2, "big")).hexdigest()[:16]
        if candidate not in refused and passes_policy(candidate, username, email):
            return candidate
    raise RuntimeError("no policy-passing password found")


def _is_positive(context, case, method, path):
    meta = case.meta
    return (
        context.operation is not None
        and context.operation.path == path
        and context.operation.method.lower() == method
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
    )


def _seed(body):
    return repr(sorted(body.items())).encode("utf-8", "surrogatepass")


@schemathesis.hook
def map_case(context, case):
    if _is_positive(context, case, "post", "/api/register"):
        fields = [case.body.get(k) for k in ("password", "username", "email")]
        if all(isinstance(v, str) for v in fields) and not passes_policy(*fields):
            password, username, email = fields
            case.body = {**case.body, "password": _strong(_seed(case.body), username, email)}
    elif _is_positive(context, case, "put", "/api/users/me") and _account["email"] is not None:
        seed = _seed(case.body)
        if hashlib.sha256(seed).digest()[0] % 4 == 0:
            with _lock:
                current, used = _account["password"], [_account["password"], *_account["used"]]
            case.body = {
                "current_password": current,
                "new_password": _strong(seed, USERNAME, _account["email"], refused=used),
            }
    return case


@schemathesis.hook
def after_call(context, case, response):
    if (
        response.status_code == 200
        and case.method.upper() == "PUT"
        and case.path == "/api/users/me"
        and isinstance(case.body, dict)
    ):
        _remember(case.body["new_password"])
