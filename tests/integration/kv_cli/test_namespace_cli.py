"""``edgekv kv namespace create|list|delete|rename`` as a subprocess against a real central."""

from __future__ import annotations

import json
import re
import tomllib

from edgekv.config import load_config
from tests.integration.kv_cli.conftest import Admin, Workspace, unique

NAMESPACE_ID = re.compile(r"^[0-9a-f]{32}$")


def created_id(stdout: str, field: str = "id") -> str:
    match = re.search(rf'^{field} = "([0-9a-f]{{32}})"$', stdout, re.MULTILINE)
    assert match, f"no {field} line in {stdout!r}"
    return match.group(1)


def test_create_prints_the_title_success_and_the_snippet(
    workspace: Workspace, admin: Admin
) -> None:
    worker = unique("my-worker")
    workspace.write("wrangler.toml", f'name = "{worker}"\n')

    result = workspace.run("kv", "namespace", "create", "MY_KV").ok()

    namespace_id = created_id(result.stdout)
    assert result.stdout == (
        f'🌀 Creating namespace with title "{worker}-MY_KV"\n'
        "✨ Success!\n"
        "Add the following to your configuration file in your kv_namespaces array:\n"
        "[[kv_namespaces]]\n"
        'binding = "MY_KV"\n'
        f'id = "{namespace_id}"\n'
    )
    assert result.stderr == ""
    assert admin.titles()[namespace_id] == f"{worker}-MY_KV"


def test_create_with_env_and_preview_names_both_in_title_and_snippet(
    workspace: Workspace, admin: Admin
) -> None:
    worker = unique("my-worker")
    workspace.write("wrangler.toml", f'name = "{worker}"\n[env.staging]\n')

    result = workspace.run("kv", "namespace", "create", "MY_KV", "--env", "staging", "--preview")

    result.ok()
    namespace_id = created_id(result.stdout, "preview_id")
    assert result.stdout == (
        f'🌀 Creating namespace with title "{worker}-staging-MY_KV_preview"\n'
        "✨ Success!\n"
        "Add the following to your configuration file in your kv_namespaces array "
        "under [env.staging]:\n"
        "[[env.staging.kv_namespaces]]\n"
        'binding = "MY_KV"\n'
        f'preview_id = "{namespace_id}"\n'
    )
    assert admin.titles()[namespace_id] == f"{worker}-staging-MY_KV_preview"


def test_create_without_a_config_uses_worker_as_the_name(workspace: Workspace) -> None:
    binding = unique("NOCONFIG").replace("-", "_")

    result = workspace.run("kv", "namespace", "create", binding).ok()

    assert result.stdout.splitlines()[0] == f'🌀 Creating namespace with title "worker-{binding}"'


def test_create_with_a_title_that_exists_is_one_error_line(workspace: Workspace) -> None:
    worker = unique("dup")
    workspace.write("wrangler.toml", f'name = "{worker}"\n')
    workspace.run("kv", "namespace", "create", "MY_KV").ok()

    again = workspace.run("kv", "namespace", "create", "MY_KV")

    assert again.error_line() == (
        f"edgekv: error: A KV namespace with the title '{worker}-MY_KV' already exists."
    )


def test_update_config_appends_to_wrangler_toml(workspace: Workspace) -> None:
    worker = unique("toml-worker")
    original = (
        f'name = "{worker}"\n\n[[kv_namespaces]]\nbinding = "OLD"\nid = "{"1" * 32}"\n\n'
        f'[env.staging]\n[[env.staging.kv_namespaces]]\nbinding = "OLD"\nid = "{"2" * 32}"\n'
    )
    path = workspace.write("wrangler.toml", original)

    top = workspace.run("kv", "namespace", "create", "MY_KV", "--update-config").ok()
    assert top.stdout.splitlines()[1:] == [
        "✨ Success!",
        f"Added the binding 'MY_KV' to {path}.",
    ]
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original), "the existing text is kept as it was"
    added = text[len(original) :]
    top_id = created_id(added)
    assert added == f'\n[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{top_id}"\n'

    env_result = workspace.run(
        "kv", "namespace", "create", "STAGED", "--env", "staging", "--update-config"
    ).ok()
    assert env_result.stdout.splitlines()[0] == (
        f'🌀 Creating namespace with title "{worker}-staging-STAGED"'
    )

    config = load_config(path)
    assert [b.binding for b in config.environment(None)] == ["OLD", "MY_KV"]
    assert config.binding("MY_KV", None).id == top_id
    staged = config.binding("STAGED", "staging")
    assert staged.id is not None and NAMESPACE_ID.match(staged.id)
    assert [b.binding for b in config.environment("staging")] == ["OLD", "STAGED"]

    # The added binding works at once.
    put = workspace.run("kv", "key", "put", "k", "v", "--binding", "STAGED", "--env", "staging")
    put.ok()
    assert put.stdout == f'Writing the value "v" to key "k" on namespace {staged.id}.\n'


def test_update_config_keeps_a_toml_with_an_inline_kv_namespaces_array_valid(
    workspace: Workspace,
) -> None:
    # The style of many wrangler docs: kv_namespaces = [ { binding = ..., id = ... } ].
    original = (
        f'name = "{unique("inline")}"\n'
        f'kv_namespaces = [\n  {{ binding = "OLD", id = "{"1" * 32}" }}\n]\n'
    )
    path = workspace.write("wrangler.toml", original)

    result = workspace.run("kv", "namespace", "create", "MY_KV", "--update-config")

    text = path.read_text(encoding="utf-8")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(
            "edgekv/cli/kv_cmd.py _add_to_config appends a '[[kv_namespaces]]' table after an "
            "inline 'kv_namespaces = [...]' array, which is invalid TOML: the command reports "
            f"success (exit {result.returncode}) and leaves a config nothing can read "
            f"({exc}). Validate the new text (tomllib.loads) before writing, or add to the "
            f"inline array.\n--- {path.name} ---\n{text}"
        ) from None
    if result.returncode == 0:
        assert [b.binding for b in load_config(path).environment(None)] == ["OLD", "MY_KV"]
    else:
        assert text == original, "a refused edit leaves the file as it was"
        result.error_line()


def test_update_config_adds_to_wrangler_json(workspace: Workspace) -> None:
    worker = unique("json-worker")
    path = workspace.write_json(
        "wrangler.json", {"name": worker, "main": "src/index.js", "env": {"production": {}}}
    )

    top = workspace.run("kv", "namespace", "create", "MY_KV", "--update-config").ok()
    env = workspace.run(
        "kv", "namespace", "create", "MY_KV", "--env", "production", "--preview", "--update-config"
    ).ok()

    assert top.stdout.splitlines()[-1] == f"Added the binding 'MY_KV' to {path}."
    assert env.stdout.splitlines()[0] == (
        f'🌀 Creating namespace with title "{worker}-production-MY_KV_preview"'
    )
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["main"] == "src/index.js", "other fields are kept"
    [top_entry] = raw["kv_namespaces"]
    [env_entry] = raw["env"]["production"]["kv_namespaces"]
    assert top_entry.keys() == {"binding", "id"} and top_entry["binding"] == "MY_KV"
    assert env_entry.keys() == {"binding", "preview_id"} and env_entry["binding"] == "MY_KV"
    assert NAMESPACE_ID.match(top_entry["id"]) and NAMESPACE_ID.match(env_entry["preview_id"])
    config = load_config(path)
    assert config.binding("MY_KV", None).id == top_entry["id"]
    assert config.binding("MY_KV", "production").preview_id == env_entry["preview_id"]


def test_update_config_of_a_jsonc_file_refuses_before_creating(
    workspace: Workspace, admin: Admin
) -> None:
    worker = unique("jsonc-worker")
    workspace.write("wrangler.jsonc", f'{{\n  // comments\n  "name": "{worker}",\n}}\n')

    result = workspace.run("kv", "namespace", "create", "MY_KV", "--update-config")

    line = result.error_line()
    assert "wrangler.jsonc" in line and ".jsonc" in line
    orphaned = f"{worker}-MY_KV" in admin.titles().values()
    assert not orphaned, (
        "edgekv/cli/kv_cmd.py namespace_create: with --update-config on a .jsonc file the "
        "namespace is created first and then the config edit is refused, leaving a "
        "namespace whose id is printed nowhere; check _add_to_config's preconditions "
        "before create_namespace (or print the snippet)"
    )


def test_update_config_of_an_existing_binding_is_one_line_and_creates_nothing(
    workspace: Workspace, admin: Admin
) -> None:
    worker = unique("exists-worker")
    workspace.write(
        "wrangler.toml",
        f'name = "{worker}"\n[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{"1" * 32}"\n',
    )

    result = workspace.run("kv", "namespace", "create", "MY_KV", "--update-config")

    assert result.returncode != 0
    stderr_lines = result.stderr.splitlines()
    assert len(stderr_lines) == 1, (
        "edgekv/cli/kv_cmd.py _add_to_config: the 'exists already' ConfigError embeds the "
        f"multi-line snippet, so the error is {len(stderr_lines)} lines:\n{result.stderr}"
    )
    created = f"{worker}-MY_KV" in admin.titles().values()
    assert not created, (
        "edgekv/cli/kv_cmd.py namespace_create creates the namespace before finding that "
        "the binding exists"
    )


def test_list_is_a_json_array_sorted_by_title(workspace: Workspace, admin: Admin) -> None:
    prefix = unique("list")
    second = admin.create(f"{prefix}-b")
    first = admin.create(f"{prefix}-a")

    result = workspace.run("kv", "namespace", "list").ok()

    assert result.stderr == ""
    listed = result.json()
    assert isinstance(listed, list)
    assert all(entry.keys() == {"id", "title", "supports_url_encoding"} for entry in listed)
    titles = [entry["title"] for entry in listed]
    assert titles == sorted(titles)
    mine = [entry for entry in listed if entry["title"].startswith(prefix)]
    assert mine == [
        {"id": first, "title": f"{prefix}-a", "supports_url_encoding": True},
        {"id": second, "title": f"{prefix}-b", "supports_url_encoding": True},
    ]
    assert result.stdout.startswith("[\n  {\n    "), "pretty-printed with 2-space indent"


def test_delete_by_binding_and_preview_with_and_without_confirmation(
    workspace: Workspace, admin: Admin
) -> None:
    main_id, preview_id, staging_id = admin.create(), admin.create(), admin.create()
    workspace.write(
        "wrangler.toml",
        f'[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{main_id}"\npreview_id = "{preview_id}"\n'
        f'[[env.staging.kv_namespaces]]\nbinding = "MY_KV"\nid = "{staging_id}"\n',
    )

    declined = workspace.run(
        "kv", "namespace", "delete", "--binding", "MY_KV", "--preview", input="n\n"
    ).ok()
    assert declined.stdout == "Not deleting.\n"
    assert declined.stderr == (
        f"Are you sure you want to delete namespace {preview_id}? It cannot be undone. [y/N] "
    )
    assert preview_id in admin.titles()

    confirmed = workspace.run(
        "kv", "namespace", "delete", "--binding", "MY_KV", "--preview", input="y\n"
    ).ok()
    assert confirmed.stdout == (
        f"Deleting KV namespace {preview_id}.\nDeleted KV namespace {preview_id}.\n"
    )

    staged = workspace.run(
        "kv", "namespace", "delete", "--binding", "MY_KV", "--env", "staging", "-y"
    ).ok()
    by_id = workspace.run("kv", "namespace", "delete", "--namespace-id", main_id, "-y").ok()
    assert staged.stdout == (
        f"Deleting KV namespace {staging_id}.\nDeleted KV namespace {staging_id}.\n"
    )
    assert by_id.stdout == f"Deleting KV namespace {main_id}.\nDeleted KV namespace {main_id}.\n"
    assert staged.stderr == by_id.stderr == "", "-y asks nothing"
    remaining = admin.titles()
    assert not {main_id, preview_id, staging_id} & remaining.keys()

    again = workspace.run("kv", "namespace", "delete", "--namespace-id", main_id, "-y")
    assert main_id in again.error_line() and "namespace not found" in again.error_line()


def test_delete_with_both_ids_and_no_preview_flag_is_one_error_line(
    workspace: Workspace, admin: Admin
) -> None:
    main_id, preview_id = admin.create(), admin.create()
    path = workspace.write(
        "wrangler.toml",
        f'[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{main_id}"\npreview_id = "{preview_id}"\n',
    )

    line = workspace.run("kv", "namespace", "delete", "--binding", "MY_KV", "-y").error_line()

    assert line == (
        f'edgekv: error: {path}: binding "MY_KV" has both id and preview_id; '
        "pass --preview for preview_id or --preview false for id"
    )
    assert {main_id, preview_id} <= admin.titles().keys()


def test_rename(workspace: Workspace, admin: Admin) -> None:
    namespace_id = admin.create()
    new_title = unique("renamed")

    result = workspace.run(
        "kv", "namespace", "rename", "--namespace-id", namespace_id, "--new-name", new_title
    ).ok()

    assert result.stdout == (
        f'Renaming KV namespace {namespace_id} to "{new_title}".\n'
        f'✨ Successfully renamed namespace to "{new_title}"\n'
    )
    assert admin.titles()[namespace_id] == new_title

    too_long = workspace.run(
        "kv", "namespace", "rename", "--namespace-id", namespace_id, "--new-name", "t" * 513
    )
    assert too_long.error_line() == (
        "edgekv: error: --new-name is 513 characters; the limit is 512"
    )
    assert admin.titles()[namespace_id] == new_title


def test_create_output_is_valid_toml(workspace: Workspace) -> None:
    workspace.write("wrangler.toml", f'name = "{unique("snippet")}"\n')

    result = workspace.run("kv", "namespace", "create", "MY_KV").ok()

    snippet = result.stdout.split("kv_namespaces array:\n", 1)[1]
    parsed = tomllib.loads(snippet)
    assert parsed["kv_namespaces"][0]["binding"] == "MY_KV"
