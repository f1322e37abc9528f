"""Layering of the project, read from the source with ``ast`` (nothing is imported).

Runtimes: ``concierge_rasa`` (the Rasa server, Python 3.10) never imports ``bot`` or ``actions``;
``bot`` never imports ``actions`` (rasa_sdk actions are the top: they call services).

Layers inside ``bot``, lowest first; a module may import its own layer or lower ones only:

    settings < db < ml < analytics < services < crm < web / entry points

``bot.settings``, ``bot.intents`` (shared intent names) and ``concierge_rasa``'s standard-library helpers
are the base everyone uses.
``ml`` holds the models, ``analytics`` the customer analytics built on them (services use its
ticket priority and segment picks: analytics never calls a service), ``services`` the business
rules behind the actions, ``crm`` the ingestor of Rasa's events (uses the identity service),
and ``web``, ``action_server``, the ``seed*`` tools and the ``__main__`` modules sit on top.

Imports inside functions are allowed to break this only where they load heavy libraries late;
the project's own modules are checked at module level, where a circle would bite at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "actions", "concierge_rasa")

#: bot's layers, lowest first (a sub-package or a module right under bot/)
BOT_LAYERS: list[set[str]] = [
    {"settings", "internal_auth", "content", "intents"},
    {"db", "migrations"},
    {"ml"},
    {"analytics"},
    {"services"},
    {"crm"},
    {"web", "action_server", "seed", "seed_catalog", "seed_feedback", "__main__"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of the imports that run when the module is imported."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                found.append((node.lineno, module))
                # "from bot.analytics import serving" imports the submodule bot.analytics.serving
                found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
            elif isinstance(node, ast.If) and not _type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = project_modules()


def project_edges() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for _, imported in module_level_imports(path):
            if imported in MODULES and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def bot_layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bot" or len(parts) == 1:
        return None
    for index, names in enumerate(BOT_LAYERS):
        if parts[1] in names:
            return index
    return None


def test_every_bot_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if m.startswith("bot.") and bot_layer(m) is None)
    assert unplaced == [], "add these to BOT_LAYERS (and to the docstring)"


def test_the_rasa_runtime_never_imports_bot_or_actions():
    bad = [
        f"{name}:{line} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith("concierge_rasa")
        for line, imported in module_level_imports(path) + _inner_imports(path)
        if imported.split(".")[0] in ("bot", "actions")
    ]
    assert bad == []


def test_bot_never_imports_actions():
    bad = [
        f"{name}:{line} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith("bot")
        for line, imported in module_level_imports(path) + _inner_imports(path)
        if imported.split(".")[0] == "actions"
    ]
    assert bad == []


def test_no_bot_module_imports_a_higher_layer():
    bad = []
    for name, path in MODULES.items():
        own = bot_layer(name)
        if own is None:
            continue
        for line, imported in module_level_imports(path) + _inner_imports(path):
            other = bot_layer(imported)
            if other is not None and other > own:
                bad.append(f"{name}:{line} ({BOT_LAYERS[own]}) imports {imported} ({BOT_LAYERS[other]})")
    assert bad == []


def test_no_import_cycles_at_module_level():
    edges = project_edges()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            walk(start)
    # a package's __init__ importing its own submodules is how packages work, not a circle
    cycles = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert cycles == []


def _inner_imports(path: Path) -> list[tuple[int, str]]:
    """Imports inside functions: they may be late, but they must still respect the layers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                    found.append((inner.lineno, inner.module))
                    found.extend((inner.lineno, f"{inner.module}.{a.name}") for a in inner.names)
                elif isinstance(inner, ast.Import):
                    found.extend((inner.lineno, a.name) for a in inner.names)
    return found


def test_the_checker_sees_what_it_must():
    """The checks above would catch a violation (guards against a walker that finds nothing)."""
    edges = project_edges()
    assert "bot.settings" in edges["bot.db.session"] or "bot.settings" in {
        i for _, i in _inner_imports(MODULES["bot.db.session"])
    }
    assert "actions.context" in edges["actions.common"] and "bot.services.identity" in edges["actions.context"]
    assert bot_layer("bot.web.app") > bot_layer("bot.services.tickets") > bot_layer("bot.db.models")


#: modules still reading the environment themselves, owned elsewhere; each should move into
#: concierge_rasa/settings.py (RasaSettings) and then leave this list
ENV_READERS_TO_MOVE: set[str] = set()


def test_only_the_settings_objects_read_the_environment():
    """os.environ / os.getenv are read by bot.settings and concierge_rasa.settings only; writing a
    default for a library (``os.environ.setdefault``) is allowed."""
    readers = set()
    for name, path in MODULES.items():
        if name in ("bot.settings", "concierge_rasa.settings"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        writes = {
            id(node.func.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault"
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and id(node) not in writes:
                readers.add(name)
    assert readers - ENV_READERS_TO_MOVE == set()
    assert readers >= ENV_READERS_TO_MOVE  # moved already? then drop it from the list
