"""Every code block of the plugin author's guide runs, so the guide cannot rot.

- python: each block runs as a module of its own (with the guide's plugins installed), and
  the ``test_*`` functions it defines run too (async ones under trio's mock clock, as
  pytest-trio's ``autojump_clock`` would). Each block that implements a hook is also built as
  a distribution, really pip-installed and loaded by mcpd's loader; so is the minimal plugin,
  from the guide's own ``pyproject.toml`` and module blocks.
- toml: each block parses; config blocks pass ``mcpd config check``.
- sh: ``pip install`` lines name the guide's package; ``mcpd`` lines run for real, and the
  sample output in their comments must appear in what they print.
- the table of contents lists every section, in order, and every ``#anchor`` link resolves.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from support.plugins import install_plugins

import mcpd
import mcpd.plugin.testing
from mcpd.plugin.registry import load_registry
from mcpd.plugin.testing import call_tool

GUIDE = Path(__file__).resolve().parents[2] / "plugins" / "README.md"
TEXT = GUIDE.read_text()
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
HELLO_MODULE = "# src/mcpd_hello/__init__.py"


@dataclass(frozen=True)
class Block:
    lang: str
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.lang or 'text'}-line-{self.line}"


def blocks(lang: str | None = None) -> list[Block]:
    found = [
        Block(match["lang"], TEXT.count("\n", 0, match.start()) + 1, _unindent(match))
        for match in FENCE.finditer(TEXT)
    ]
    return [block for block in found if lang is None or block.lang == lang]


def _unindent(match: re.Match[str]) -> str:
    """A block inside a list item is indented like its fence."""
    indent = match["indent"]
    return "".join(line.removeprefix(indent) for line in match["body"].splitlines(keepends=True))


def by_id(items: list[Block]) -> dict[str, Any]:
    return {"argvalues": items, "ids": [block.id for block in items]}


def hook_blocks() -> list[Block]:
    return [
        block
        for block in blocks("python")
        if "@mcpd.hookimpl" in block.code and not block.code.startswith(HELLO_MODULE)
    ]


def entry_point(block: Block) -> str:
    return f"guide_line_{block.line}"


@pytest.fixture(scope="module")
def guide_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guide's minimal plugin and every hook block, built and pip-installed."""
    sources = tmp_path_factory.mktemp("guide-sources")
    hello = sources / "mcpd-hello"
    [pyproject] = [b for b in blocks("toml") if 'name = "mcpd-hello"' in b.code]
    [module] = [b for b in blocks("python") if b.code.startswith(HELLO_MODULE)]
    (hello / "src" / "mcpd_hello").mkdir(parents=True)
    (hello / "pyproject.toml").write_text(pyproject.code)
    (hello / "src" / "mcpd_hello" / "__init__.py").write_text(module.code)
    packages = [hello]
    for block in hook_blocks():
        name = entry_point(block)
        package = sources / name
        package.mkdir()
        (package / f"{name}.py").write_text(block.code)
        (package / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name.replace("_", "-")}"\nversion = "1.0"\n'
            f'dependencies = ["mcpd-daemon"]\n[project.entry-points.mcpd]\n{name} = "{name}"\n'
            f'[tool.setuptools]\npy-modules = ["{name}"]\n'
        )
        packages.append(package)
    site = tmp_path_factory.mktemp("guide-site")
    install_plugins(site, *packages)
    return site


@pytest.fixture
def on_path(guide_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The guide's plugins importable here for one test, and forgotten afterwards."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(guide_site))
    yield guide_site
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(guide_site)):
            del sys.modules[name]


def run_block(block: Block) -> dict[str, Any]:
    """Run a block as a module of its own; then the test functions it defines."""
    name = f"guide_block_{block.line}"
    module = types.ModuleType(name)
    module.__file__ = f"{GUIDE}:{block.line}"
    sys.modules[name] = module  # pydantic and get_type_hints look annotations up there
    try:
        exec(compile(block.code, module.__file__, "exec"), module.__dict__)
        for test_name, test in list(vars(module).items()):
            if test_name.startswith("test_") and inspect.isfunction(test):
                _run_test(test)
    finally:
        del sys.modules[name]
    return module.__dict__


def _run_test(test: Any) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    wanted = inspect.signature(test).parameters
    kwargs = {"autojump_clock": clock} if "autojump_clock" in wanted else {}
    if inspect.iscoroutinefunction(test):
        trio.run(partial(test, **kwargs), clock=clock)
    else:
        test(**kwargs)


@pytest.mark.parametrize("block", **by_id(blocks("python")))
def test_every_python_block_runs(block: Block, on_path: Path) -> None:
    namespace = run_block(block)
    served = [value for value in namespace.values() if hasattr(value, "definition")]
    for item in served:  # what a client's list request would get, for every revision
        for revision in ("2024-11-05", "2025-11-25", "2026-07-28"):
            assert item.definition(revision)
    assert served or "load_registry" in block.code, "a block that defines nothing to serve"


@pytest.mark.parametrize("block", **by_id(hook_blocks()))
def test_hook_blocks_load_as_plugins(block: Block, on_path: Path) -> None:
    name = entry_point(block)
    registry = load_registry(enable=[name], disable=(), plugin_settings={})
    record = registry.plugin(name)
    assert record is not None
    assert record.state == "loaded", record.error
    assert record.tools or record.resources or record.prompts


async def test_the_minimal_plugin_loads_from_its_own_files_and_greets(on_path: Path) -> None:
    registry = load_registry(enable=["hello"], disable=(), plugin_settings={})
    record = registry.plugin("hello")
    assert record is not None
    assert (record.state, record.distribution, record.tools) == ("loaded", "mcpd-hello", ("greet",))
    greet = registry.tools["greet"]
    assert greet.description == "Say hello to someone."
    result = await call_tool(greet, {"name": "Ada"})
    assert result["content"] == [{"type": "text", "text": "Hello, Ada!"}]


def _mcpd(args: list[str], site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    environ.setdefault("CONFIGURATION_DIRECTORY", "/nonexistent-mcpd-test")
    return subprocess.run(
        [sys.executable, "-m", "mcpd", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("block", **by_id(blocks("toml")))
def test_every_toml_block_parses_and_configs_check(
    block: Block, guide_site: Path, tmp_path: Path
) -> None:
    document = tomllib.loads(block.code)
    if "project" in document:  # the guide's pyproject.toml: it built the hello plugin
        assert document["project"]["entry-points"]["mcpd"] == {"hello": "mcpd_hello"}
        assert document["project"]["dependencies"] == ["mcpd-daemon"]
        return
    config = tmp_path / "mcpd.toml"
    config.write_text(block.code)
    checked = _mcpd(["config", "check", "--config", str(config)], guide_site)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""


@pytest.mark.parametrize("block", **by_id(blocks("sh")))
def test_every_shell_block_does_what_it_says(block: Block, guide_site: Path) -> None:
    for line in filter(None, (raw.strip() for raw in block.code.splitlines())):
        command, _, comment = line.partition("#")
        words = command.split()
        if words[:2] == ["pip", "install"]:
            assert words[2:] == ["./mcpd-hello"]  # the guide's package, built by guide_site
            continue
        assert words[0] == "mcpd", f"a shell line this test does not know: {line!r}"
        result = _mcpd(words[1:], guide_site)
        assert result.returncode == 0, result.stderr
        rows = [row.split() for row in result.stdout.splitlines()]
        assert comment.split() in rows, f"{line!r} printed:\n{result.stdout}"


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_table_of_contents_is_complete_and_every_anchor_resolves() -> None:
    outside_code = FENCE.sub("", TEXT)
    sections = re.findall(r"^## (.+)$", outside_code, re.M)
    toc = re.findall(r"^- \[(.+)\]\(#([^)]+)\)$", outside_code, re.M)
    assert [title for title, _ in toc] == sections
    assert [anchor for _, anchor in toc] == [_slug(section) for section in sections]
    anchors = {_slug(heading) for heading in re.findall(r"^#{2,6} (.+)$", outside_code, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", outside_code)
    assert links
    assert [link for link in links if link not in anchors] == []


def _resolve(dotted: str) -> object:
    """``mcpd.plugin.tool.ToolAnnotations`` -> the object: import the longest module, then
    look the rest up as attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(dotted)


MENTIONED = sorted(
    {
        name
        for code in re.findall(r"`([^`]+)`", FENCE.sub("", TEXT))
        for name in re.findall(r"(?<![\w.])(mcpd(?:\.\w+)+)", code)
        if name != "mcpd.toml"  # the config file
    }
)


@pytest.mark.parametrize("dotted", MENTIONED)
def test_every_mcpd_name_the_guide_mentions_is_importable(dotted: str) -> None:
    assert _resolve(dotted) is not None


def test_the_guide_lists_exactly_what_mcpd_exports() -> None:
    start = TEXT.index("Everything a plugin needs is exported by `mcpd` itself")
    listing = TEXT[start : TEXT.index("Optional extras", start)]
    listed = set(re.findall(r"`mcpd\.(\w+)`", listing))
    assert listed == set(mcpd.__all__) - {"__version__"}
    extras = TEXT[TEXT.index("Optional extras") :].split("\n\n")[0]
    testing = re.search(r"`mcpd\.plugin\.testing`\s*\(([^)]*)\)", extras)
    assert testing is not None
    for name in re.findall(r"`(\w+)`", testing.group(1)):
        assert name in mcpd.plugin.testing.__all__


def test_every_block_is_one_this_test_knows() -> None:
    assert {block.lang for block in blocks()} <= {"", "python", "toml", "sh"}
    assert len(blocks("python")) >= 10
