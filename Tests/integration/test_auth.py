"""Bearer authentication on every /v1 call."""

import pytest

from warren_support import assert_problem, sha256_hex

ENDPOINTS = [
    ("GET", "/v1/environments"),
    ("POST", "/v1/environments"),
    ("GET", "/v1/environments/some-env"),
    ("DELETE", "/v1/environments/some-env"),
]

# Authorization header values that must all be refused (None: header absent).
BAD_AUTH = {
    "absent": None,
    "unknown-token": "Bearer d2FycmVuLWRvZXMtbm90LWtub3ctbWU",
    "empty-bearer": "Bearer ",
    "basic-scheme": "Basic Z3Vlc3Q6Z3Vlc3Q=",
    "token-without-scheme": "{token}",
    "hash-instead-of-token": "Bearer {hash}",
    "token-with-suffix": "Bearer {token}x",
    "token-prefix": "Bearer {prefix}",
}


@pytest.mark.parametrize("method,path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize("case", sorted(BAD_AUTH))
def test_401_without_valid_token(anon, tokens, method, path, case, broker_unchanged):
    token = tokens["team-a"]
    value = BAD_AUTH[case]
    headers = {}
    if value is not None:
        headers["Authorization"] = value.format(token=token, hash=sha256_hex(token),
                                                prefix=token[:-1])
    kw = {"json_body": {"name": "some-env"}} if method == "POST" else {}
    resp = anon.request(method, path, headers=headers, **kw)
    body = assert_problem(resp, 401, "unauthorized")
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.split(" ")[0].split(",")[0].lower() == "bearer", (
        f"WWW-Authenticate {challenge!r} must name the Bearer scheme")
    assert token not in resp.text and sha256_hex(token) not in resp.text
    assert "password" not in body
    broker_unchanged(f"{method} {path} refused with 401")


def test_each_team_token_is_accepted(api_a, api_b):
    assert api_a.list().status_code == 200
    assert api_b.list().status_code == 200
