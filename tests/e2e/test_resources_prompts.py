"""Resources, prompts and completion over real HTTP, in both eras, from the fixture plugin.

The shared daemon pages lists by 4 (``[tools] page_size``), so every list below has more than
one page and is walked to its end.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from support.client import P
from support.daemon import Daemon
from support.eras import EraClient

PAGE_SIZE = 4
FIXED = {
    "fixture://text",
    "fixture://binary",
    *(f"fixture://numbers/{n}" for n in range(1, 6)),
}
TEMPLATES = {
    "fixture://asks/{topic}",
    "fixture://files/{+path}",
    "fixture://notes/{name}",
    "fixture://users/{org}/{user}",
    "fixture://words/{word}",
}
PROMPTS = {"greet", "plain", "pick", "interview", "pair"}
EXAMPLE_URI = "fixture://text"


@pytest.fixture(params=["legacy", "modern"])
def era(request: pytest.FixtureRequest, daemon: Daemon, http: httpx.Client) -> EraClient:
    return EraClient(http, daemon.url, modern=request.param == "modern")


def assert_era_shape(era: EraClient, result: dict[str, Any], *, cacheable: bool) -> None:
    """2026 results carry resultType, serverInfo and (cacheable methods) ttlMs/cacheScope;
    legacy results carry none of them."""
    if era.modern:
        assert result["resultType"] == "complete"
        assert result["_meta"][P + "serverInfo"]["name"] == "mcpd"
        if cacheable:
            assert isinstance(result["ttlMs"], int)
            assert result["ttlMs"] >= 0
            assert result["cacheScope"] in ("public", "private")
        else:
            assert "ttlMs" not in result
            assert "cacheScope" not in result
    else:
        for key in ("resultType", "ttlMs", "cacheScope"):
            assert key not in result
        assert P + "serverInfo" not in result.get("_meta", {})


def walk(era: EraClient, method: str, key: str) -> list[dict[str, Any]]:
    pages = era.walk(method, key)
    assert len(pages) >= 2
    for page in pages:
        assert 1 <= len(page[key]) <= PAGE_SIZE
        assert_era_shape(era, page, cacheable=True)
    if era.modern:  # all pages of one list share one cache scope
        assert len({page["cacheScope"] for page in pages}) == 1
    return [item for page in pages for item in page[key]]


# -- lists ---------------------------------------------------------------------------------------


def test_resources_list_walks_every_page(era: EraClient) -> None:
    resources = walk(era, "resources/list", "resources")
    uris = [resource["uri"] for resource in resources]
    assert uris == sorted(uris)
    assert set(uris) == FIXED
    text = next(r for r in resources if r["uri"] == "fixture://text")
    assert text["name"] == "text"
    assert text["mimeType"] == "text/plain"
    assert text["size"] == len("hello from the fixture")
    assert text["description"] == "A fixed text resource."
    assert all("uriTemplate" not in resource for resource in resources)


def test_resource_templates_list_walks_every_page(era: EraClient) -> None:
    templates = walk(era, "resources/templates/list", "resourceTemplates")
    assert {t["uriTemplate"] for t in templates} == TEMPLATES
    note = next(t for t in templates if t["uriTemplate"] == "fixture://notes/{name}")
    assert note == {
        "uriTemplate": "fixture://notes/{name}",
        "name": "note",
        "description": "A note by name; unknown names are not found.",
        "mimeType": "text/plain",
    }


def test_prompts_list_walks_every_page(era: EraClient) -> None:
    prompts = walk(era, "prompts/list", "prompts")
    names = [prompt["name"] for prompt in prompts]
    assert names == sorted(names)
    assert set(names) == PROMPTS
    greet = next(p for p in prompts if p["name"] == "greet")
    assert greet["description"] == "Greet someone in a style."
    assert greet["arguments"] == [
        {"name": "name", "description": "who to greet", "required": True},
        {"name": "style"},
    ]
    plain = next(p for p in prompts if p["name"] == "plain")
    assert "arguments" not in plain


@pytest.mark.parametrize("method", ["resources/list", "resources/templates/list", "prompts/list"])
@pytest.mark.parametrize("cursor", ["not-a-cursor", "", 7])
def test_invalid_cursor_is_invalid_params(era: EraClient, method: str, cursor: object) -> None:
    assert era.error(method, {"cursor": cursor})["code"] == -32602


def test_list_entries_follow_the_revision(daemon: Daemon, http: httpx.Client) -> None:
    """title from 2025-06-18, icons from 2025-11-25 (resources and prompts alike)."""
    seen: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for version in ("2025-03-26", "2025-06-18", "2025-11-25"):
        client = EraClient(http, daemon.url, modern=False, version=version)
        resources = [
            r for page in client.walk("resources/list", "resources") for r in page["resources"]
        ]
        text_entry = next(r for r in resources if r["uri"] == "fixture://text")
        prompts = [p for page in client.walk("prompts/list", "prompts") for p in page["prompts"]]
        seen[version] = (text_entry, next(p for p in prompts if p["name"] == "greet"))
    old, middle, new = seen["2025-03-26"], seen["2025-06-18"], seen["2025-11-25"]
    assert "title" not in old[0]
    assert "title" not in old[1]
    assert middle[0]["title"] == "Fixture text"
    assert middle[1]["title"] == "Greeting"
    assert "icons" not in middle[0]
    assert new[0]["icons"] == [{"src": "https://example.invalid/icon.png", "mimeType": "image/png"}]


# -- resources/read ------------------------------------------------------------------------------


def test_read_text_resource(era: EraClient) -> None:
    result = era.result("resources/read", {"uri": "fixture://text"})
    assert result["contents"] == [
        {"uri": "fixture://text", "mimeType": "text/plain", "text": "hello from the fixture"}
    ]
    assert_era_shape(era, result, cacheable=True)


def test_read_binary_resource_is_base64(era: EraClient) -> None:
    result = era.result("resources/read", {"uri": "fixture://binary"})
    (contents,) = result["contents"]
    assert contents["uri"] == "fixture://binary"
    assert contents["mimeType"] == "image/png"
    assert "text" not in contents
    assert base64.b64decode(contents["blob"], validate=True).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        ("fixture://notes/alpha", "first note"),
        ("fixture://notes/alphabet", "letters"),
        ("fixture://files/a/b/c.txt", "file at a/b/c.txt"),
        ("fixture://users/acme/ada", "ada@acme"),
        ("fixture://words/hello%20world", "hello world"),
        ("fixture://numbers/3", "number 3"),
    ],
)
def test_read_template_passes_its_variables(era: EraClient, uri: str, text: str) -> None:
    result = era.result("resources/read", {"uri": uri})
    assert result["contents"] == [{"uri": uri, "text": text, **_mime(uri)}]
    assert_era_shape(era, result, cacheable=True)


def _mime(uri: str) -> dict[str, str]:
    return {"mimeType": "text/plain"} if uri.startswith("fixture://notes/") else {}


@pytest.mark.parametrize(
    "uri",
    [
        "fixture://nothing-here",  # matches nothing at all
        "fixture://notes/zeta",  # a template whose function says not found
        "fixture://words/a/b",  # {word} does not match across a slash
        "fixture://users/acme/nobody",
    ],
)
def test_read_unknown_resource_uses_the_eras_code(era: EraClient, uri: str) -> None:
    error = era.error("resources/read", {"uri": uri})
    assert error["code"] == (-32602 if era.modern else -32002)
    assert error["data"]["uri"] == uri


def test_read_needs_a_uri(daemon: Daemon, http: httpx.Client) -> None:
    legacy = EraClient(http, daemon.url, modern=False)
    assert legacy.error("resources/read", {})["code"] == -32602
    assert legacy.error("resources/read", {"uri": ""})["code"] == -32602


# -- prompts/get ---------------------------------------------------------------------------------


def test_get_prompt_with_arguments(era: EraClient) -> None:
    result = era.result("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
    assert result["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Greet Ada in a friendly way."}}
    ]
    assert result["description"] == "Greet someone in a style."
    assert_era_shape(era, result, cacheable=False)
    formal = era.result(
        "prompts/get", {"name": "greet", "arguments": {"name": "Ada", "style": "formal"}}
    )
    assert formal["messages"][0]["content"]["text"] == "Greet Ada in a formal way."


def test_get_prompt_without_arguments(era: EraClient) -> None:
    result = era.result("prompts/get", {"name": "plain"})
    assert [(m["role"], m["content"]["text"]) for m in result["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
    ]


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("greet", {}),  # required argument missing
        ("greet", None),
        ("pair", {"first": "a"}),
        ("greet", {"name": 7}),  # arguments are strings
        ("greet", {"name": "Ada", "mood": "x"}),  # not an argument of greet
        ("no_such_prompt", {}),
    ],
)
def test_get_prompt_bad_request_is_invalid_params(
    era: EraClient, name: str, arguments: dict[str, Any] | None
) -> None:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    assert era.error("prompts/get", params)["code"] == -32602


# -- completion/complete -------------------------------------------------------------------------


def complete(
    era: EraClient, ref: dict[str, str], name: str, value: str, /, **context: str
) -> dict[str, Any]:
    params: dict[str, Any] = {"ref": ref, "argument": {"name": name, "value": value}}
    if context:
        params["context"] = {"arguments": context}
    result = era.result("completion/complete", params)
    assert_era_shape(era, result, cacheable=False)
    return result["completion"]  # type: ignore[no-any-return]


GREET = {"type": "ref/prompt", "name": "greet"}
USERS = {"type": "ref/resource", "uri": "fixture://users/{org}/{user}"}


def test_complete_prompt_argument(era: EraClient) -> None:
    assert complete(era, GREET, "style", "f")["values"] == ["formal", "friendly", "funny"]
    assert complete(era, GREET, "style", "fo")["values"] == ["formal"]
    assert complete(era, GREET, "style", "x")["values"] == []


def test_complete_prompt_argument_with_context(era: EraClient) -> None:
    values = complete(era, GREET, "style", "fr", name="Ada")["values"]
    assert values == ["friendly for Ada"]


def test_complete_template_variable(era: EraClient) -> None:
    notes = {"type": "ref/resource", "uri": "fixture://notes/{name}"}
    assert complete(era, notes, "name", "alph")["values"] == ["alpha", "alphabet"]
    assert complete(era, USERS, "user", "")["values"] == ["ada", "alan", "grace", "peter", "milton"]


def test_complete_template_variable_with_context(era: EraClient) -> None:
    assert complete(era, USERS, "user", "", org="initech")["values"] == ["peter", "milton"]
    assert complete(era, USERS, "user", "a", org="acme")["values"] == ["ada", "alan"]


def test_complete_without_a_provider_is_empty(era: EraClient) -> None:
    assert complete(era, USERS, "org", "a")["values"] == []


def test_completion_is_capped_at_100_with_total_and_has_more(era: EraClient) -> None:
    completion = complete(era, {"type": "ref/prompt", "name": "pick"}, "item", "")
    assert len(completion["values"]) == 100
    assert completion["values"][:2] == ["item000", "item001"]
    assert completion["total"] == 150
    assert completion["hasMore"] is True
    narrow = complete(era, {"type": "ref/prompt", "name": "pick"}, "item", "item14")
    assert narrow["values"] == [f"item14{n}" for n in range(10)]
    assert "hasMore" not in narrow or narrow["hasMore"] is False


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ({"type": "ref/prompt", "name": "no_such_prompt"}, "x"),
        ({"type": "ref/prompt", "name": "greet"}, "not_an_argument"),
        ({"type": "ref/resource", "uri": "fixture://nowhere/{x}"}, "x"),
        ({"type": "ref/resource", "uri": "fixture://notes/{name}"}, "title"),
        ({"type": "ref/nonsense"}, "x"),
    ],
)
def test_complete_bad_reference_is_invalid_params(
    era: EraClient, ref: dict[str, str], name: str
) -> None:
    params = {"ref": ref, "argument": {"name": name, "value": ""}}
    assert era.error("completion/complete", params)["code"] == -32602
