"""The checked-in runnx/_C.pyi names exactly what the extension exports."""

import ast
import inspect
import os

import runnx
from runnx import _C

STUB = os.path.join(os.path.dirname(runnx.__file__), "_C.pyi")


def _stub_names():
    tree = ast.parse(open(STUB).read())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return top, members


def test_stub_matches_extension():
    top, members = _stub_names()
    public = {n for n in dir(_C) if not n.startswith("_")}
    assert public == top, f"in _C but not the stub: {public - top}; in the stub only: {top - public}"
    actual = {n for n in dir(_C.Session) if not n.startswith("_")}
    assert actual == members["Session"] - {"__init__"}


def test_every_public_name_has_a_docstring():
    for name in runnx.__all__:
        obj = getattr(runnx, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"runnx.{name} has no docstring"
