"""schemathesis hooks for scripts/test-api.

A fresh session for every phase: the bearer token comes from `POST /api/token` with the phase's
account (API_USERNAME, API_PASSWORD) and is fetched again whenever an answer is 401. Logout and
password change revoke every token of the account, and the run goes on with a new one instead of
testing the rest unauthenticated.

The password policy: JSON Schema can state a new password's length and characters, not that it
is common, repetitive, a sequence or built on the username. `openapi.yaml` states those rules in
words and their data in `x-password-policy`; a schema-valid registration the policy would refuse
gets, in positive cases only, a password that passes, so "valid data accepted" is checked on
requests the document calls valid. Negative cases are sent as generated.
"""

import hashlib
import os

import requests
import schemathesis
import yaml

BASE_URL = os.environ["API_BASE_URL"]
USERNAME = os.environ["API_USERNAME"]
PASSWORD = os.environ["API_PASSWORD"]

_DOC = yaml.safe_load(requests.get(f"{BASE_URL}/api/openapi.yaml", timeout=30).text)
_NEW_PASSWORD = _DOC["components"]["schemas"]["NewPassword"]
_POLICY = _NEW_PASSWORD["x-password-policy"]
_COMMON = set(_POLICY["common-words"])


@schemathesis.auth(refresh_interval=600)
class Session:
    def get(self, case, context):
        r = requests.post(
            f"{BASE_URL}/api/token",
            json={"username": USERNAME, "password": PASSWORD},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["access_token"]

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


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if (
        context.operation is None
        or context.operation.path != "/api/register"
        or meta is None
        or not meta.generation.mode.is_positive
        or not isinstance(case.body, dict)
    ):
        return case
    password = case.body.get("password")
    username = case.body.get("username")
    email = case.body.get("email")
    if not all(isinstance(v, str) for v in (password, username, email)):
        return case
    if passes_policy(password, username, email):
        return case
    seed = password.encode("utf-8", "surrogatepass")
    for salt in range(100):
        candidate = "Qz7!" + hashlib.sha256(seed + bytes([salt])).hexdigest()[:16]
        if passes_policy(candidate, username, email):
            case.body = {**case.body, "password": candidate}
            break
    return case
