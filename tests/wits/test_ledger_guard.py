"""Only `wits/ledger.py` writes wallets, reservations and ledger entries (STYLE.md, Money).

A static scan of every project module (outside tests/, migrations and virtualenvs) with `ast`:
- ORM writes (`save`, `create`, `update`, `delete`, `bulk_*`, `get_or_create`, related-manager
  `add`/`remove`/`set`/`clear`, and their async twins) on the three models, their managers,
  querysets, instances, or the relations that lead to them (`user.wallet`, `wallet.entries`);
- raw SQL strings (plain, f-strings, `+`/`%`/`.format`) that write to their tables;
- Django admin registrations of them that do not refuse add, change and delete.

The scan is checked against the ledger itself (it must find the ledger's own writes, and only
those) and against synthetic snippets that must and must not be flagged.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"wits/ledger.py"}
SKIP_DIRS = {"tests", "migrations", "node_modules", "__pycache__", "build", "dist"}

PROTECTED_MODELS = frozenset({"Wallet", "Reservation", "LedgerEntry"})
PROTECTED_TABLES = ("wits_wallet", "wits_reservation", "wits_ledgerentry")
# The relation names that lead to the protected models (checked against Django's model graph
# by `test_relation_names_cover_every_path_to_the_protected_models`).
RELATIONS = frozenset({"wallet", "reservations", "entries", "reservation"})
_WRITES = {
    "save",
    "save_base",
    "create",
    "update",
    "delete",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
    "add",
    "remove",
    "set",
    "clear",
}
WRITE_METHODS = frozenset(_WRITES | {f"a{name}" for name in _WRITES})
# Attributes that keep pointing at the protected models: managers, model meta, relations.
_CARRIERS = frozenset({"objects", "_default_manager", "_base_manager", "_meta", "db_table"})
_TABLE = "wits_protected_table"
_SQL_WRITE = re.compile(
    r"\b(insert\s+into|update|delete\s+from|truncate|alter\s+table|drop\s+table|copy|merge\s+into)\b",
    re.IGNORECASE,
)
_TABLES = re.compile("|".join([*PROTECTED_TABLES, _TABLE]), re.IGNORECASE)
_ADMIN_REFUSALS = ("has_add_permission", "has_change_permission", "has_delete_permission")


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    function: str
    what: str


class _Scope:
    """Which names of one function (or the module) hold a protected value, at this point."""

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.names: dict[str, bool] = {}

    def has(self, name: str) -> bool:
        if name in self.names:
            return self.names[name]
        return self.parent is not None and self.parent.has(name)


class _Scanner:
    """Finds writes to the protected models in one module's syntax tree."""

    def __init__(self, tree: ast.Module, path: str, classes: dict[str, ast.ClassDef]) -> None:
        self.tree = tree
        self.path = path
        self.classes = classes
        self.model_aliases: set[str] = set()
        self.module_aliases: set[str] = set()
        self.violations: list[Violation] = []

    # --- what counts as "the protected models" ---

    def collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module == "wits.models":
                for alias in node.names:
                    if alias.name in PROTECTED_MODELS:
                        self.model_aliases.add(alias.asname or alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module == "wits":
                for alias in node.names:
                    if alias.name == "models":
                        self.module_aliases.add(alias.asname or "models")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "wits.models":
                        self.module_aliases.add(alias.asname or "wits.models")

    def dotted(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def is_model(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.model_aliases
        if isinstance(node, ast.Attribute) and node.attr in PROTECTED_MODELS:
            return self.dotted(node.value) in self.module_aliases
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value in PROTECTED_MODELS  # a string annotation
        return False

    def protected(self, node: ast.expr | None, scope: _Scope) -> bool:
        """Does this expression evaluate to a protected model, manager, queryset or row?"""
        if node is None:
            return False
        if self.is_model(node):
            return True
        if isinstance(node, ast.Name):
            return scope.has(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr in RELATIONS:
                return True
            return node.attr in _CARRIERS and self.protected(node.value, scope)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get_model":
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]
                return any(str(n).split(".")[-1] in PROTECTED_MODELS for n in names)
            if isinstance(func, ast.Attribute):
                return self.protected(func.value, scope)
            return self.is_model(func)
        if isinstance(node, ast.Subscript):
            return self.protected(node.value, scope)
        if isinstance(node, ast.Await):
            return self.protected(node.value, scope)
        return False

    # --- scopes and the names bound to protected values ---

    def bind(self, target: ast.expr, scope: _Scope, protected: bool) -> None:
        """A (re)binding in source order: later uses see the latest value."""
        if isinstance(target, ast.Name):
            scope.names[target.id] = protected
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.bind(element, scope, protected)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, scope, protected)

    def bind_node(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.Assign):
            value = self.protected(node.value, scope)
            for target in node.targets:
                self.bind(target, scope, value)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr):
            value = node.value is not None and self.protected(node.value, scope)
            annotated = isinstance(node, ast.AnnAssign) and self.annotated_protected(
                node.annotation
            )
            self.bind(node.target, scope, value or annotated)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            self.bind(node.target, scope, self.protected(node.iter, scope))
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            # The element is evaluated after the generators bind their targets.
            for generator in node.generators:
                self.bind_node(generator, scope)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self.bind(node.optional_vars, scope, self.protected(node.context_expr, scope))

    def bind_arguments(self, args: ast.arguments, scope: _Scope) -> None:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        for arg in every:
            if arg is not None:
                annotated = arg.annotation is not None and self.annotated_protected(arg.annotation)
                scope.names[arg.arg] = annotated

    def annotated_protected(self, annotation: ast.expr) -> bool:
        return any(self.is_model(n) for n in ast.walk(annotation))

    def walk_scope(self, body: list[ast.AST]):
        """Every node of a scope, without descending into nested functions or classes."""
        stack = list(reversed(body))
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, _FUNCTIONS):
                # Its decorators and defaults belong to this scope; its body to its own.
                stack.extend(reversed([*node.decorator_list, *_defaults(node.args)]))
            elif isinstance(node, ast.Lambda):
                stack.extend(reversed(_defaults(node.args)))
            else:
                stack.extend(reversed(list(ast.iter_child_nodes(node))))

    # --- findings ---

    def flag(self, node: ast.AST, function: str, what: str) -> None:
        self.violations.append(Violation(self.path, node.lineno, function, what))

    def sql_text(self, node: ast.expr, scope: _Scope) -> str | None:
        """The text of a string expression, with protected parts shown as a table name."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue):
                    parts.append(_TABLE if self.protected(value.value, scope) else "{}")
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
            left = self.sql_text(node.left, scope)
            right = self.sql_text(node.right, scope)
            if self.protected(node.right, scope) or self.protected(node.left, scope):
                return f"{left or ''} {_TABLE} {right or ''}"
            if left is not None or right is not None:
                return f"{left or ''} {right or ''}"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
        ):
            base = self.sql_text(node.func.value, scope)
            args = [*node.args, *(k.value for k in node.keywords)]
            if base is not None and any(self.protected(a, scope) for a in args):
                return f"{base} {_TABLE}"
            return base
        return None

    def check_scope(self, body: list[ast.AST], scope: _Scope, function: str) -> None:
        nodes = list(self.walk_scope(body))
        decorators = {id(d) for n in nodes if isinstance(n, ast.ClassDef) for d in n.decorator_list}
        for node in nodes:
            self.bind_node(node, scope)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITE_METHODS
                and self.protected(node.func.value, scope)
            ):
                self.flag(node, function, f".{node.func.attr}() on a protected model")
            if isinstance(node, ast.Call) and id(node) not in decorators:
                self.check_admin_register(node, function)
            if isinstance(node, ast.expr) and not isinstance(node, ast.FormattedValue):
                text = self.sql_text(node, scope)
                if text and _SQL_WRITE.search(text) and _TABLES.search(text):
                    self.flag(node, function, f"raw SQL writing a protected table: {text[:60]!r}")
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if isinstance(decorator, ast.Call):
                        self.check_admin_register(decorator, function, admin_class=node)

    def check_admin_register(
        self, call: ast.Call, function: str, admin_class: ast.ClassDef | None = None
    ) -> None:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else None
        if isinstance(call.func, ast.Name):
            name = call.func.id
        if name != "register":
            return
        if not any(self.is_model(arg) for arg in call.args):
            return
        if admin_class is None:
            named = [a for a in call.args[1:] if isinstance(a, ast.Name)]
            admin_class = self.classes.get(named[0].id) if named else None
        if admin_class is None or not self.refuses_writes(admin_class):
            self.flag(call, function, "admin registration that allows add, change or delete")

    def refuses_writes(self, cls: ast.ClassDef) -> bool:
        refused: set[str] = set()
        pending = [cls]
        while pending:
            current = pending.pop()
            for item in current.body:
                if isinstance(item, ast.FunctionDef) and item.name in _ADMIN_REFUSALS:
                    returns = [n for n in ast.walk(item) if isinstance(n, ast.Return)]
                    if returns and all(
                        isinstance(r.value, ast.Constant) and r.value.value is False
                        for r in returns
                    ):
                        refused.add(item.name)
            for base in current.bases:
                if isinstance(base, ast.Name) and base.id in self.classes:
                    pending.append(self.classes[base.id])
        return refused >= set(_ADMIN_REFUSALS)

    def run(self) -> list[Violation]:
        self.collect_imports()
        self.visit(self.tree.body, _Scope(None), "<module>", None)
        return self.violations

    def visit(
        self,
        body: list[ast.AST],
        scope: _Scope,
        function: str,
        args: ast.arguments | None,
        *,
        protected_self: bool = False,
    ) -> None:
        if args is not None:
            self.bind_arguments(args, scope)
            if protected_self and args.args:
                scope.names[args.args[0].arg] = True
        self.check_scope(body, scope, function)
        nodes = list(self.walk_scope(body))
        # Methods of the models themselves: their `self` is a protected row.
        model_methods = {
            id(item)
            for node in nodes
            if isinstance(node, ast.ClassDef) and node.name in PROTECTED_MODELS
            for item in node.body
        }
        for node in nodes:
            if isinstance(node, _FUNCTIONS):
                self.visit(
                    node.body,
                    _Scope(scope),
                    node.name,
                    node.args,
                    protected_self=id(node) in model_methods,
                )
            elif isinstance(node, ast.Lambda):
                self.visit([node.body], _Scope(scope), "<lambda>", node.args)


def scan_source(
    source: str, path: str = "<snippet>", classes: dict[str, ast.ClassDef] | None = None
) -> list[Violation]:
    tree = ast.parse(source)
    local = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    return _Scanner(tree, path, {**(classes or {}), **local}).run()


def project_modules(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in SKIP_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        found.append(path)
    return found


def scan_tree(root: Path, *, allowed: set[str] = ALLOWED) -> list[Violation]:
    sources = {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in project_modules(root)
    }
    trees = {rel: ast.parse(src) for rel, src in sources.items()}
    classes = {
        n.name: n for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
    }
    violations = []
    for rel, tree in trees.items():
        if rel in allowed:
            continue
        violations.extend(_Scanner(tree, rel, classes).run())
    return violations


# --- the guard ----------------------------------------------------------------------------------


def test_only_the_ledger_writes_wallets_reservations_and_entries():
    assert scan_tree(ROOT) == []


def test_scan_covers_the_project_apps_and_skips_tests_and_migrations():
    scanned = {p.relative_to(ROOT).as_posix() for p in project_modules(ROOT)}

    assert {"wits/ledger.py", "wits/views_api.py", "accounts/services.py"} <= scanned
    assert not any(p.startswith(("tests/", ".venv/")) or "/migrations/" in p for p in scanned)


def test_scanner_finds_exactly_the_ledgers_own_writes():
    source = (ROOT / "wits/ledger.py").read_text(encoding="utf-8")

    found = scan_source(source, "wits/ledger.py")

    assert {(v.function, v.what.split(":")[0]) for v in found} == {
        # The one-statement reserve and settle of the PostgreSQL fast path.
        ("<module>", "raw SQL writing a protected table"),
        ("_move", "raw SQL writing a protected table"),
        ("_entry", ".create() on a protected model"),
        ("open_wallet", ".get_or_create() on a protected model"),
        ("reserve", ".create() on a protected model"),
        ("_settle", ".update() on a protected model"),
        ("record_usage", ".update() on a protected model"),
    }


def test_relation_names_cover_every_path_to_the_protected_models():
    from django.apps import apps

    protected = {apps.get_model("wits", name) for name in PROTECTED_MODELS}
    names = set()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if field.is_relation and field.related_model in protected:
                concrete = getattr(field, "concrete", False)
                names.add(field.name if concrete else field.get_accessor_name())

    assert names == RELATIONS


FLAGGED = [
    "from wits.models import Wallet\nWallet.objects.filter(user_id=1).update(available=5)",
    "from wits.models import Wallet as W\nW.objects.create(user_id=1)",
    "from wits.models import LedgerEntry\nLedgerEntry.objects.bulk_create([])",
    "from wits.models import LedgerEntry\nLedgerEntry.objects.all().delete()",
    "from wits.models import Reservation\nReservation.objects.get(pk=1).delete()",
    "from wits import models\nmodels.Reservation.objects.update_or_create(pk=1)",
    "import wits.models\nwits.models.Wallet.objects.select_for_update().get(pk=1).save()",
    "import wits.models as wm\nwm.LedgerEntry._default_manager.bulk_update([], ['amount'])",
    "from wits.models import Wallet\nw = Wallet.objects.get(pk=1)\nw.available += 1\nw.save()",
    "from wits.models import Wallet\nqs = Wallet.objects.all()\nrows = qs.filter(reserved=0)\n"
    "rows.update(reserved=1)",
    "from wits.models import Wallet\nfor w in Wallet.objects.all():\n    w.save()",
    "from wits.models import Wallet\n[w.delete() for w in Wallet.objects.all()]",
    "from wits.models import Wallet\ndef f(w: Wallet) -> None:\n    w.save(update_fields=['x'])",
    "def f(w: 'Wallet') -> None:\n    w.delete()",
    "from wits.models import Wallet\nasync def f():\n    await Wallet.objects.acreate(user_id=1)",
    "from wits.models import Wallet\nasync def f():\n    w = await Wallet.objects.aget(pk=1)\n"
    "    await w.asave()",
    "def f(user):\n    user.wallet.save()",
    "def f(request):\n    request.user.wallet.entries.create(kind='grant')",
    "def f(wallet):\n    wallet.reservations.filter(state='held').update(state='released')",
    "def f(entry):\n    entry.reservation.delete()",
    "class Wallet:\n    def top_up(self, n):\n        self.available += n\n        self.save()",
    "from django.apps import apps\napps.get_model('wits', 'Wallet').objects.update(available=0)",
    "from django.apps import apps\nW = apps.get_model('wits.LedgerEntry')\nW.objects.create()",
    "def f(c):\n    c.execute('UPDATE wits_wallet SET available = 0')",
    "def f(c):\n    c.execute('delete from WITS_LEDGERENTRY where id = 1')",
    'def f(c):\n    c.execute("INSERT INTO \\"wits_reservation\\" (id) VALUES (1)")',
    "from wits.models import Wallet\ndef f(c):\n"
    "    c.execute(f'UPDATE {Wallet._meta.db_table} SET reserved = 0')",
    "from wits.models import Wallet\nT = Wallet._meta.db_table\ndef f(c):\n"
    "    c.execute(f'UPDATE {T} SET reserved = 0')",
    "from wits.models import Wallet\ndef f(c):\n    c.execute('UPDATE ' + Wallet._meta.db_table)",
    "from wits.models import Wallet\ndef f(c):\n"
    "    c.execute('DELETE FROM %s' % Wallet._meta.db_table)",
    "from wits.models import Wallet\ndef f(c):\n"
    "    c.execute('TRUNCATE {}'.format(Wallet._meta.db_table))",
    "from django.contrib import admin\nfrom wits.models import Wallet\nadmin.site.register(Wallet)",
    "from django.contrib import admin\nfrom wits.models import Wallet\n"
    "@admin.register(Wallet)\nclass WalletAdmin(admin.ModelAdmin):\n"
    "    readonly_fields = ['available']",
    "from django.contrib import admin\nfrom wits.models import LedgerEntry\n"
    "class EntryAdmin(admin.ModelAdmin):\n"
    "    def has_add_permission(self, request):\n        return False\n"
    "admin.site.register(LedgerEntry, EntryAdmin)",
]


@pytest.mark.parametrize("snippet", FLAGGED)
def test_scanner_flags_a_write_outside_the_ledger(snippet):
    assert len(scan_source(textwrap.dedent(snippet))) == 1


NOT_FLAGGED = [
    "from wits.models import Wallet\nWallet.objects.filter(user_id=1).first()",
    "from wits.models import Wallet\nWallet.objects.count()",
    "from wits.models import LedgerEntry\nrows = LedgerEntry.objects.filter(wallet_id=1)\n"
    "page = list(rows[:10])",
    "from wits.models import TopupOrder\nTopupOrder.objects.filter(pk=1).update(state='canceled')",
    "from wits.models import TopupOrder\nTopupOrder.objects.create(wits=1)",
    "def f(user):\n    user.save()\n    user.tier.save()",
    "totals = {}\ntotals.update(a=1)\nseen = set()\nseen.add(1)",
    "from wits import ledger\nledger.grant(user_id=1, amount=5, actor='system')",
    "from wits.models import Wallet\nw = Wallet.objects.get(pk=1)\ndef g(w):\n    w.save()",
    "def f(c):\n    c.execute('SELECT available FROM wits_wallet WHERE user_id = %s', [1])",
    "def f(c):\n    c.execute('UPDATE accounts_user SET is_active = false')",
    "from wits.models import Wallet\nname = Wallet._meta.db_table\nlabel = f'table {name}'",
    "from django.contrib import admin\nfrom wits.models import Wallet\n"
    "class ReadOnly(admin.ModelAdmin):\n"
    "    def has_add_permission(self, request):\n        return False\n"
    "    def has_change_permission(self, request, obj=None):\n        return False\n"
    "    def has_delete_permission(self, request, obj=None):\n        return False\n"
    "@admin.register(Wallet)\nclass WalletAdmin(ReadOnly):\n    list_display = ['user']",
]


@pytest.mark.parametrize("snippet", NOT_FLAGGED)
def test_scanner_leaves_reads_and_other_models_alone(snippet):
    assert scan_source(textwrap.dedent(snippet)) == []


def test_scan_tree_flags_a_module_added_next_to_the_ledger(tmp_path):
    # given: a copy of the layout with one new module writing a wallet
    (tmp_path / "wits").mkdir()
    (tmp_path / "wits/ledger.py").write_text(
        "from wits.models import Wallet\nWallet.objects.update(available=1)\n"
    )
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway/relay.py").write_text(
        "def settle(user):\n    user.wallet.reserved = 0\n    user.wallet.save()\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_x.py").write_text("def t(user):\n    user.wallet.save()\n")

    found = scan_tree(tmp_path)

    assert found == [
        Violation("gateway/relay.py", 3, "settle", ".save() on a protected model"),
    ]
