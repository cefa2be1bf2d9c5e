from __future__ import annotations

from epeflow.config import load_schema
from epeflow.config_docs import render_config_docs


def _undocumented(node, path, schema):
    missing = []
    for name, child in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        target = schema["definitions"][child["$ref"].rsplit("/", 1)[-1]] if "$ref" in child else child
        if not (child.get("description") or target.get("description")):
            missing.append(key)
        missing += _undocumented(target, key, schema)
    return missing


def test_every_schema_key_has_a_description():
    schema = load_schema()
    missing = _undocumented(schema, "", schema)
    for name in ("dataset", "experiment"):
        missing += _undocumented(schema["definitions"][name], name, schema)
    assert missing == []


def test_config_readme_is_current(repo):
    rendered = render_config_docs()
    assert (repo / "config" / "README.md").read_text() == rendered, (
        "config/README.md is stale: regenerate it with `epeflow config --docs > config/README.md`"
    )
    assert "`experiments.<name>.knn.k`" in rendered and "`datasets.<name>.crops.size`" in rendered
