"""The [tracing] config, and how the OTEL_* environment picks exporters and the resource.

The spans themselves are tested on a real daemon: tests/e2e/test_tracing.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from mcpd import tracing, tracing_otel
from mcpd.config import ConfigError, TracingSettings, load_settings
from mcpd.startup import StartupError, user_failure


def test_tracing_config(tmp_path: Path) -> None:
    assert load_settings().tracing == TracingSettings(enabled=False, flush_timeout=2.0)
    path = tmp_path / "mcpd.toml"
    path.write_text("[tracing]\nenabled = true\nflush_timeout_seconds = 0\n")
    assert load_settings(path).tracing == TracingSettings(enabled=True, flush_timeout=0.0)
    path.write_text('[tracing]\nenabled = "yes"\n')
    with pytest.raises(ConfigError, match=r"tracing\.enabled: expected true or false"):
        load_settings(path)
    path.write_text("[tracing]\nexporter = 'otlp'\n")
    with pytest.raises(ConfigError, match=r"tracing\.exporter: unknown key"):
        load_settings(path)


def test_off_is_the_no_op_facade(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(kind: str, name: str) -> bool:
        raise AssertionError("asked while off")

    assert tracing.start(TracingSettings(), registered=never) is tracing.NO_TRACING
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    on = TracingSettings(enabled=True)
    assert tracing.start(on, registered=never) is tracing.NO_TRACING
    assert tracing.NO_TRACING.enabled is False


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, [OTLPSpanExporter]),  # OTLP over HTTP/protobuf, the specification's default
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, [OTLPSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, [OTLPSpanExporter, ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
    ],
)
def test_exporters_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: list[type]
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert [type(exporter) for exporter in tracing_otel.exporters()] == expected


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "jaeger"},
            "OTEL_TRACES_EXPORTER: no installed exporter is called 'jaeger' (installed: "
            "console, none, otlp, otlp_proto_http)",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not an OTLP protocol mcpd can export "
            "with (expected http/protobuf or grpc)",
        ),
        (
            # The gRPC exporter is a package of its own (grpcio), not part of the extra.
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "OTEL_TRACES_EXPORTER: no installed exporter is called 'otlp_proto_grpc'",
        ),
    ],
)
def test_unusable_exporter_settings_are_start_failures(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StartupError) as raised:
        tracing_otel.exporters()
    assert str(raised.value).startswith(message)
    assert user_failure(raised.value) is raised.value  # one line and exit status 2


def test_the_service_is_called_mcpd_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert tracing_otel._resource().attributes["service.name"] == "mcpd"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=tools,deployment.environment=prod")
    attributes = tracing_otel._resource().attributes
    assert (attributes["service.name"], attributes["deployment.environment"]) == ("tools", "prod")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "mcp-prod")
    assert tracing_otel._resource().attributes["service.name"] == "mcp-prod"
