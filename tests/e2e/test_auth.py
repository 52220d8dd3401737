"""Who may call what, on a real daemon: static keys and JWT access tokens (a loopback JWKS
server, tokens signed with real keys), refusals at the HTTP layer, lists per principal,
state bound to the principal that made it, and the audit trail.

The daemon runs the issue's contract config (``keys+oauth``, one key made by the real
``mcpd auth new-key`` command, ``[[auth.rules]]`` giving ``probe_sleep`` the scope
``probe:write``), plus a rule that hides ``probe_echo`` from everyone but ``bob``.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.client import messages_of, modern_headers, modern_meta
from support.daemon import WAIT, Daemon, write_config
from support.eras import modern_body
from support.keys import Keyed, new_key
from support.loopback_http import LoopbackServer, loopback_server
from support.plugins import install_plugins
from support.tokens import RESOURCE, Issuer, publish, rsa_key

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[LoopbackServer, Issuer]]:
    with loopback_server() as server:
        issuer = Issuer(issuer=server.url, audience=RESOURCE)
        issuer.add(rsa_key("r1"))
        publish(server, issuer)
        yield server, issuer


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {
        "ci-bot": new_key("ci-bot", "probe:read"),
        "writer": new_key("writer", "probe:read", "probe:write"),
        "bob": new_key("bob", "probe:read"),
    }


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory,
    jwks: tuple[LoopbackServer, Issuer],
    keys: dict[str, tuple[str, str]],
) -> Iterator[Daemon]:
    site = tmp_path_factory.mktemp("auth-site")
    install_plugins(site, FIXTURES / "mcpd-fixture-probe")
    server, _ = jwks
    key_tables = "\n".join(
        f'[[auth.keys]]\nprincipal = "{name}"\n{hash_line}\nscopes = {json.dumps(scopes)}\n'
        for (name, (_, hash_line)), scopes in zip(
            keys.items(),
            [["probe:read"], ["probe:read", "probe:write"], ["probe:read"]],
            strict=True,
        )
    )
    config = write_config(
        tmp_path_factory.mktemp("auth-cfg") / "mcpd.toml",
        f"""
[server]
listen = ["127.0.0.1:0"]
sse_keepalive_seconds = 0.5
shutdown_grace_seconds = 1

[plugins]
enable = ["probe"]

[auth]
mode = "keys+oauth"
resource = "{RESOURCE}"

{key_tables}
[auth.oauth]
issuer = "{server.url}"
jwks_uri = "{server.url}/jwks"
audiences = ["{RESOURCE}"]

[[auth.rules]]
tools = ["probe_sleep"]
scopes = ["probe:write"]

[[auth.rules]]
tools = ["probe_echo"]
principals = ["bob", "sub:alice"]
""",
    )
    running = Daemon.start(config, pythonpath=site)
    yield running
    assert running.stop() == 0


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def raw_post(daemon: Daemon, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST over a raw socket: the response bytes exactly as sent (header case too)."""
    host, port = daemon.binds[0].removeprefix("http://").rsplit(":", 1)
    head = f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < received.index(b"\r\n\r\n") + 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t"},
        },
    }
).encode()
JSON_POST = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def test_no_token_is_a_401_challenge_without_an_error(guarded: Daemon) -> None:
    answer = raw_post(guarded, INIT, JSON_POST)
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    challenge = next(
        line for line in answer.split(b"\r\n") if line.startswith(b"WWW-Authenticate:")
    )
    assert challenge.startswith(
        b'WWW-Authenticate: Bearer resource_metadata="http://127.0.0.1:8765/'
    )
    assert b"error=" not in challenge
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["data"]["error"] == "unauthorized"


@pytest.mark.parametrize("token", ["mcpd_not-a-real-key", "a.b.c", "garbage"])
def test_a_bad_token_is_a_401_invalid_token(guarded: Daemon, token: str) -> None:
    answer = raw_post(guarded, INIT, {**JSON_POST, "authorization": f"Bearer {token}"})
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'error="invalid_token"' in answer


def test_a_key_lists_only_what_it_may_use(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    with httpx.Client(timeout=WAIT) as http:
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        assert ci.tool_names() == {"whoami", "probe_ask"}  # no probe:write/admin; not bob
        bob = Keyed(http, guarded.url, keys["bob"][0]).initialize()
        assert bob.tool_names() == {"whoami", "probe_ask", "probe_echo"}
        writer = Keyed(http, guarded.url, keys["writer"][0]).initialize()
        assert writer.tool_names() == {"whoami", "probe_ask", "probe_sleep"}
        assert ci.rpc("resources/list")["result"]["resources"] == []
        assert ci.rpc("prompts/list")["result"]["prompts"] == []


def test_calling_without_the_scope_is_a_403_naming_it(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    with httpx.Client(timeout=WAIT) as http:
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        refused = ci.request("tools/call", {"name": "probe_sleep", "arguments": {"seconds": 0}})
        assert refused.status_code == 403
        challenge = refused.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="probe:write"' in challenge
        assert refused.json()["error"]["data"]["scope"] == "probe:write"
        # A resource and a prompt that need probe:admin: 403 as well.
        read = ci.request("resources/read", {"uri": "probe://secret"})
        assert read.status_code == 403
        assert 'scope="probe:admin"' in read.headers["www-authenticate"]
        writer = Keyed(http, guarded.url, keys["writer"][0]).initialize()
        assert writer.call("probe_sleep", {"seconds": 0})["content"][0]["text"] == "slept 0.0s"


def test_a_hidden_tool_is_as_unknown_as_a_missing_one(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    with httpx.Client(timeout=WAIT) as http:
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        hidden = ci.rpc("tools/call", {"name": "probe_echo", "arguments": {"text": "x"}})
        missing = ci.rpc("tools/call", {"name": "no_such_tool", "arguments": {"text": "x"}})
        assert hidden["error"]["code"] == missing["error"]["code"] == -32602
        assert hidden["error"]["message"] == "unknown tool: 'probe_echo'"
        bob = Keyed(http, guarded.url, keys["bob"][0]).initialize()
        assert bob.call("probe_echo", {"text": "x"})["content"][0]["text"] == "x"


def test_a_jwt_is_a_principal_the_tool_sees(
    guarded: Daemon, jwks: tuple[LoopbackServer, Issuer]
) -> None:
    _, issuer = jwks
    token = issuer.token(issuer.keys["r1"], "RS256", scope="probe:read probe:write")
    with httpx.Client(timeout=WAIT) as http:
        alice = Keyed(http, guarded.url, token).initialize()
        me = alice.call("whoami")["structuredContent"]
        assert me == {
            "issuer": issuer.issuer,
            "subject": "alice",
            "client_id": "client-1",
            "scopes": ["probe:read", "probe:write"],
            "anonymous": False,
        }
        assert "probe_echo" in alice.tool_names()  # sub:alice is allowed by the rule
        expired = issuer.token(issuer.keys["r1"], "RS256", exp=1, iat=0)
        refused = Keyed(http, guarded.url, expired).request("ping")
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_a_session_belongs_to_the_principal_that_made_it(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    with httpx.Client(timeout=WAIT) as http:
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        thief = Keyed(http, guarded.url, keys["bob"][0])
        thief.session_id = ci.session_id
        stolen = thief.request("tools/call", {"name": "whoami", "arguments": {}})
        assert stolen.status_code == 404
        stream = http.get(guarded.url, headers=thief.headers(accept="text/event-stream"))
        assert stream.status_code == 404
        assert http.delete(guarded.url, headers=thief.headers()).status_code == 404
        assert ci.call("whoami")["structuredContent"]["subject"] == "ci-bot"  # still ci-bot's


def test_a_request_state_belongs_to_the_principal_it_was_given_to(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    capabilities = {"elicitation": {}}
    with httpx.Client(timeout=WAIT) as http:
        body = modern_body(
            "tools/call", {"name": "probe_ask", "arguments": {}}, capabilities=capabilities
        )
        headers = {**modern_headers("tools/call", "probe_ask"), **bearer(keys["ci-bot"][0])}
        first = http.post(guarded.url, json=body, headers=headers).json()["result"]
        assert first["resultType"] == "input_required"
        retry = modern_body(
            "tools/call",
            {
                "name": "probe_ask",
                "arguments": {},
                "requestState": first["requestState"],
                "inputResponses": {"q0": {"action": "accept", "content": {"name": "Ada"}}},
            },
            request_id=2,
            capabilities=capabilities,
        )
        other = {**modern_headers("tools/call", "probe_ask"), **bearer(keys["bob"][0])}
        replayed = http.post(guarded.url, json=retry, headers=other).json()
        assert replayed["error"]["code"] == -32602
        own = http.post(guarded.url, json=retry, headers=headers).json()
        assert own["result"]["content"][0]["text"] == "hello Ada"


def test_2026_lists_are_private_to_their_principal(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}}
    headers = {**modern_headers("tools/list"), **bearer(keys["ci-bot"][0])}
    with httpx.Client(timeout=WAIT) as http:
        result = http.post(guarded.url, json=body, headers=headers).json()["result"]
    assert result["cacheScope"] == "private"
    assert {tool["name"] for tool in result["tools"]} == {"whoami", "probe_ask"}


def test_the_2024_transport_binds_its_session_too(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    base = guarded.binds[0]
    with httpx.Client(timeout=WAIT) as http:
        assert http.get(base + "/sse", headers={"accept": "text/event-stream"}).status_code == 401
        headers = {"accept": "text/event-stream", **bearer(keys["ci-bot"][0])}
        with http.stream("GET", base + "/sse", headers=headers) as stream:
            lines = stream.iter_lines()
            endpoint = next(line for line in lines if line.startswith("data:"))[5:].strip()
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            stolen = http.post(base + endpoint, json=ping, headers=bearer(keys["bob"][0]))
            assert stolen.status_code == 404
            own = http.post(base + endpoint, json=ping, headers=bearer(keys["ci-bot"][0]))
            assert own.status_code == 202


def test_every_call_is_audited_without_secrets(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    secret_text = "do-not-log-" + base64.b16encode(b"argument").decode()
    with httpx.Client(timeout=WAIT) as http:
        bob = Keyed(http, guarded.url, keys["bob"][0]).initialize()
        assert bob.call("probe_echo", {"text": secret_text})
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        ci.request("tools/call", {"name": "probe_sleep", "arguments": {"seconds": 0}})
    ok = guarded.wait_for(
        "audit", lambda e: e.get("name") == "probe_echo" and e["principal"] == '["keys","bob"]'
    )
    assert ok["outcome"] == "ok"
    assert ok["logger"] == "mcpd.audit"
    assert ok["method"] == "tools/call"
    assert isinstance(ok["duration_ms"], float)
    ci_key = '["keys","ci-bot"]'
    denied = guarded.wait_for(
        "audit", lambda e: e.get("name") == "probe_sleep" and e["principal"] == ci_key
    )
    assert denied["outcome"] == "denied"
    hidden = guarded.wait_for(
        "audit", lambda e: e.get("name") == "probe_echo" and e["principal"] == ci_key
    )
    assert (hidden["outcome"], hidden["reason"]) == ("denied", "hidden")
    for line in guarded.raw:
        assert secret_text not in line
        for key, _ in keys.values():
            assert key not in line


def test_auth_failures_and_refusals_are_counted(guarded: Daemon) -> None:
    raw_post(guarded, INIT, JSON_POST)
    with httpx.Client(timeout=WAIT) as http:
        text = http.get(guarded.binds[0] + "/metrics").text
    assert 'mcpd_auth_failures_total{reason="missing"}' in text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('mcpd_auth_failures_total{reason="missing"}')
    )
    assert float(line.split()[-1]) >= 1


def test_a_refusal_answers_the_request_it_refuses(
    guarded: Daemon, keys: dict[str, tuple[str, str]]
) -> None:
    with httpx.Client(timeout=WAIT) as http:
        ci = Keyed(http, guarded.url, keys["ci-bot"][0]).initialize()
        response = ci.request("tools/call", {"name": "probe_admin", "arguments": {}}, "admin-1")
    assert response.status_code == 403
    (message,) = messages_of(response)
    assert message["id"] == "admin-1"
    assert 'scope="probe:admin"' in response.headers["www-authenticate"]
