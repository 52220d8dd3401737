"""The resources the conformance scenarios read (or subscribe to) by URI.

``test://static-text`` is registered first on purpose: the ``caching`` scenario reads the
first resource of ``resources/list``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import mcpd
from mcpd_conformance.media import RED_PIXEL_PNG

TEMPLATE_IDS = ("1", "2", "3", "42", "123", "999")


@mcpd.resource(
    "test://static-text",
    name="static_text",
    description="A fixed text resource (resources-read-text)",
    mime_type="text/plain",
)
def static_text() -> str:
    return "This is the content of the static text resource."


@mcpd.resource(
    "test://static-binary",
    name="static_binary",
    description="A fixed binary resource, a 1x1 PNG (resources-read-binary)",
    mime_type="image/png",
)
def static_binary() -> bytes:
    return RED_PIXEL_PNG


@mcpd.resource(
    "test://watched-resource",
    name="watched_resource",
    description="A resource clients may subscribe to (resources-subscribe, -unsubscribe)",
    mime_type="text/plain",
)
def watched_resource() -> str:
    return "This resource may change; subscribe to hear about it."


@mcpd.resource(
    "test://embedded-resource",
    name="embedded_resource",
    description="The resource test_embedded_resource embeds, readable on its own",
    mime_type="text/plain",
)
def embedded_resource() -> str:
    return "This is an embedded resource content."


@mcpd.resource(
    "test://template/{id}/data",
    name="template_data",
    description="JSON data for any id (resources-templates-read)",
    mime_type="application/json",
)
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@template_data.complete("id")
def _complete_template_id(value: str, context: Mapping[str, str]) -> list[str]:
    return [candidate for candidate in TEMPLATE_IDS if candidate.startswith(value)]


RESOURCES = (static_text, static_binary, watched_resource, embedded_resource, template_data)
