"""wrangler configuration and cluster location, without sockets.

:mod:`edgekv.config` reads ``wrangler.toml`` / ``wrangler.json`` /
``wrangler.jsonc`` into bindings per environment and resolves a binding to a
namespace id by wrangler's rules; :mod:`edgekv.locate` finds the cluster from
a flag, then an environment variable, then the state file. Every problem is
one line naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekv.config import (
    ConfigError,
    KVBinding,
    WranglerConfig,
    find_config,
    load_config,
    resolve_id,
)
from edgekv.locate import (
    ClusterNotFoundError,
    ClusterState,
    edge_variable,
    locate_central,
    locate_edge,
    read_state,
    state_file_path,
)

TOP_ID = "0" * 31 + "1"
TOP_PREVIEW_ID = "0" * 31 + "2"
STAGING_ID = "a" * 32
PRODUCTION_ID = "b" * 32

# The seed example: one binding, MY_KV, with its own id in each environment.
SEED_TOML = f"""\
name = "my-worker"

[[kv_namespaces]]
binding = "MY_KV"
id = "{TOP_ID}"
preview_id = "{TOP_PREVIEW_ID}"

[env.staging]
[[env.staging.kv_namespaces]]
binding = "MY_KV"
id = "{STAGING_ID}"

[env.production]
[[env.production.kv_namespaces]]
binding = "MY_KV"
id = "{PRODUCTION_ID}"
"""

SEED_JSON = {
    "name": "my-worker",
    "kv_namespaces": [{"binding": "MY_KV", "id": TOP_ID, "preview_id": TOP_PREVIEW_ID}],
    "env": {
        "staging": {"kv_namespaces": [{"binding": "MY_KV", "id": STAGING_ID}]},
        "production": {"kv_namespaces": [{"binding": "MY_KV", "id": PRODUCTION_ID}]},
    },
}

SEED_JSONC = f"""\
// wrangler.jsonc: comments and trailing commas are allowed
{{
  /* the Worker */
  "name": "my-worker", // a line comment after a value
  "routes": ["https://example.com/*", "http://a//b"],
  "kv_namespaces": [
    {{"binding": "MY_KV", "id": "{TOP_ID}", "preview_id": "{TOP_PREVIEW_ID}",}},
  ],
  "env": {{
    "staging": {{"kv_namespaces": [{{"binding": "MY_KV", "id": "{STAGING_ID}"}},]}},
    "production": {{
      "kv_namespaces": [
        {{"binding": "MY_KV", "id": "{PRODUCTION_ID}"}}, /* trailing, then a comment */
      ],
    }},
  }},
}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(params=["wrangler.toml", "wrangler.json", "wrangler.jsonc"])
def seed_config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name: str = request.param
    text = {
        "wrangler.toml": SEED_TOML,
        "wrangler.json": json.dumps(SEED_JSON, indent=2),
        "wrangler.jsonc": SEED_JSONC,
    }[name]
    return write(tmp_path, name, text)


def assert_one_line_naming(error: Exception, path: Path, *fragments: str) -> None:
    message = str(error)
    assert "\n" not in message, f"the message should be one line, got {message!r}"
    assert str(path) in message, f"the message should name {path}, got {message!r}"
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in {message!r}"


# -- parsing -------------------------------------------------------------------------------


def test_each_format_reads_the_name_and_the_bindings_of_every_environment(
    seed_config: Path,
) -> None:
    config = load_config(seed_config)

    assert isinstance(config, WranglerConfig)
    assert config.path == seed_config
    assert config.name == "my-worker"
    assert config.kv_namespaces == {
        None: [KVBinding("MY_KV", TOP_ID, TOP_PREVIEW_ID)],
        "staging": [KVBinding("MY_KV", STAGING_ID)],
        "production": [KVBinding("MY_KV", PRODUCTION_ID)],
    }


def test_the_seed_example_resolves_my_kv_per_environment(seed_config: Path) -> None:
    config = load_config(seed_config)

    def resolved(env: str | None, preview: bool | None) -> str:
        return resolve_id(config.binding("MY_KV", env), preview, config.path)

    assert resolved("staging", None) == STAGING_ID
    assert resolved("production", None) == PRODUCTION_ID
    assert resolved("staging", False) == STAGING_ID
    assert resolved(None, True) == TOP_PREVIEW_ID
    assert resolved(None, False) == TOP_ID


def test_kv_namespaces_are_not_inherited_by_an_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wrangler.toml",
        f'name = "w"\n[[kv_namespaces]]\nbinding = "MY_KV"\nid = "{TOP_ID}"\n'
        '[env.staging]\nvars = { A = "1" }\n',
    )
    config = load_config(path)

    assert config.environment(None) == [KVBinding("MY_KV", TOP_ID)]
    assert config.environment("staging") == [], "[env.staging] must not inherit MY_KV"
    with pytest.raises(ConfigError) as caught:
        config.binding("MY_KV", "staging")
    assert_one_line_naming(caught.value, path, '"MY_KV"', "[env.staging]")


def test_a_config_without_name_or_bindings_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "wrangler.toml", 'main = "src/index.js"\n'))

    assert config.name is None
    assert config.environment(None) == []


def test_jsonc_keeps_comment_markers_inside_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wrangler.jsonc",
        '{"name": "a//b/*c*/d", // real comment\n "kv_namespaces": []}',
    )

    assert load_config(path).name == "a//b/*c*/d"


def test_jsonc_keeps_a_comma_before_a_bracket_inside_strings(tmp_path: Path) -> None:
    # _strip_jsonc removes trailing commas with a regex that does not skip strings, so
    # "a, }" inside a string value loses its comma.
    path = write(tmp_path, "wrangler.jsonc", '{"name": "a, }", "kv_namespaces": [],}')

    assert load_config(path).name == "a, }", (
        "edgekv/config.py _strip_jsonc: the trailing-comma regex ',(\\s*[}\\]])' also "
        "rewrites string contents; a string '\"a, }\"' became '\"a }\"'"
    )


def test_a_json_file_is_not_read_as_jsonc(tmp_path: Path) -> None:
    path = write(tmp_path, "wrangler.json", '{"name": "w", // no comments in .json\n}')

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_naming(caught.value, path, "invalid JSON")


def test_find_config_looks_in_the_folder_then_above_preferring_toml(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    write(tmp_path, "wrangler.jsonc", "{}")
    assert find_config(nested) == tmp_path / "wrangler.jsonc"

    write(tmp_path, "wrangler.json", "{}")
    assert find_config(nested) == tmp_path / "wrangler.json"

    write(tmp_path, "wrangler.toml", "")
    assert find_config(nested) == tmp_path / "wrangler.toml"

    write(tmp_path / "a", "wrangler.jsonc", "{}")
    assert find_config(nested) == tmp_path / "a" / "wrangler.jsonc", "the nearest folder wins"


def test_find_config_is_none_without_a_config(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None


# -- resolve_id ----------------------------------------------------------------------------


CONFIG_PATH = Path("/project/wrangler.toml")


def test_preview_picks_preview_id_and_preview_false_picks_id() -> None:
    both = KVBinding("MY_KV", TOP_ID, TOP_PREVIEW_ID)

    assert resolve_id(both, True, CONFIG_PATH) == TOP_PREVIEW_ID
    assert resolve_id(both, False, CONFIG_PATH) == TOP_ID


def test_without_a_flag_the_only_id_present_is_used() -> None:
    assert resolve_id(KVBinding("MY_KV", id=TOP_ID), None, CONFIG_PATH) == TOP_ID
    assert (
        resolve_id(KVBinding("MY_KV", preview_id=TOP_PREVIEW_ID), None, CONFIG_PATH)
        == TOP_PREVIEW_ID
    )


def test_both_ids_without_a_flag_is_an_error_asking_for_one() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_id(KVBinding("MY_KV", TOP_ID, TOP_PREVIEW_ID), None, CONFIG_PATH)

    assert_one_line_naming(
        caught.value, CONFIG_PATH, '"MY_KV"', "id and preview_id", "--preview", "--preview false"
    )


@pytest.mark.parametrize(
    ("binding", "preview", "fragment"),
    [
        (KVBinding("MY_KV", id=TOP_ID), True, "no preview_id"),
        (KVBinding("MY_KV", preview_id=TOP_PREVIEW_ID), False, "no id"),
        (KVBinding("MY_KV"), None, "no id or preview_id"),
        (KVBinding("MY_KV"), True, "no preview_id"),
        (KVBinding("MY_KV"), False, "no id"),
    ],
)
def test_a_missing_id_is_an_error(binding: KVBinding, preview: bool | None, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_id(binding, preview, CONFIG_PATH)

    assert_one_line_naming(caught.value, CONFIG_PATH, '"MY_KV"', fragment)


# -- bad configuration: one ConfigError naming the file ------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("wrangler.toml", 'name = "w\n', "invalid TOML"),
        ("wrangler.toml", "[[kv_namespaces]\n", "invalid TOML"),
        ("wrangler.json", '{"name": "w",}', "invalid JSON"),
        ("wrangler.json", "", "invalid JSON"),
        ("wrangler.jsonc", '{"name": "w" "x": 1}', "invalid JSON"),
        ("wrangler.jsonc", "{ /* never closed ", "invalid JSON"),
        ("wrangler.json", "[]", "must be an object"),
        ("wrangler.json", '{"name": 5}', '"name" must be a string'),
        ("wrangler.json", '{"kv_namespaces": {}}', '"kv_namespaces" must be an array'),
        ("wrangler.json", '{"kv_namespaces": [{"id": "x"}]}', '"kv_namespaces[0]" needs'),
        ("wrangler.json", '{"kv_namespaces": ["MY_KV"]}', '"kv_namespaces[0]" needs'),
        (
            "wrangler.json",
            '{"kv_namespaces": [{"binding": "A"}, {"binding": "B", "id": 7}]}',
            '"kv_namespaces[1].id" must be a string',
        ),
        (
            "wrangler.toml",
            '[[kv_namespaces]]\nbinding = "A"\npreview_id = 1\n',
            '"kv_namespaces[0].preview_id" must be a string',
        ),
        ("wrangler.json", '{"env": []}', '"env" must be a table'),
        ("wrangler.json", '{"env": {"staging": 1}}', '"env.staging" must be a table'),
        (
            "wrangler.toml",
            "[env.staging]\nkv_namespaces = 3\n",
            '"env.staging.kv_namespaces" must be an array',
        ),
        (
            "wrangler.toml",
            '[[env.staging.kv_namespaces]]\nid = "x"\n',
            '"env.staging.kv_namespaces[0]" needs a "binding"',
        ),
    ],
)
def test_a_bad_config_is_one_config_error_naming_the_file(
    tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert_one_line_naming(caught.value, path, fragment)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert_one_line_naming(caught.value, path, "cannot read")


def test_an_unknown_binding_names_the_file_and_the_binding(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "wrangler.toml", SEED_TOML))

    with pytest.raises(ConfigError) as caught:
        config.binding("OTHER_KV", None)
    assert_one_line_naming(caught.value, config.path, '"OTHER_KV"', "kv_namespaces")

    with pytest.raises(ConfigError) as caught:
        config.binding("OTHER_KV", "production")
    assert_one_line_naming(caught.value, config.path, '"OTHER_KV"', "[env.production]")


def test_an_unknown_environment_names_the_file_and_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "wrangler.toml", SEED_TOML))

    with pytest.raises(ConfigError) as caught:
        config.binding("MY_KV", "qa")

    assert_one_line_naming(caught.value, config.path, "'qa'", "production, staging")


def test_config_error_is_a_value_error() -> None:
    # The CLI turns ValueError into one "edgekv: error:" line.
    assert issubclass(ConfigError, ValueError)


# -- locate: flag, then environment variable, then state file ---------------------------------


def state_file(tmp_path: Path, central: str, edges: dict[str, list[str]]) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(ClusterState(central, edges).to_json(), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("region", "variable"),
    [
        ("eu-west", "EDGEKV_EDGE_EU_WEST"),
        ("us-east-1", "EDGEKV_EDGE_US_EAST_1"),
        ("apac", "EDGEKV_EDGE_APAC"),
        ("Eu-West", "EDGEKV_EDGE_EU_WEST"),
    ],
)
def test_the_edge_variable_is_the_region_upper_cased_with_underscores(
    region: str, variable: str
) -> None:
    assert edge_variable(region) == variable


def test_central_flag_beats_variable_beats_state_file(tmp_path: Path) -> None:
    path = state_file(tmp_path, "127.0.0.1:3000", {})
    environ = {"EDGEKV_CENTRAL": "127.0.0.1:2000", "EDGEKV_STATE_FILE": str(path)}

    assert locate_central("127.0.0.1:1000", environ) == "127.0.0.1:1000"
    assert locate_central(None, environ) == "127.0.0.1:2000"
    assert locate_central(None, {"EDGEKV_STATE_FILE": str(path)}) == "127.0.0.1:3000"


def test_an_empty_central_variable_counts_as_unset(tmp_path: Path) -> None:
    path = state_file(tmp_path, "127.0.0.1:3000", {})

    environ = {"EDGEKV_CENTRAL": "", "EDGEKV_STATE_FILE": str(path)}
    assert locate_central(None, environ) == "127.0.0.1:3000"


def test_edge_flag_beats_variable_beats_state_file(tmp_path: Path) -> None:
    path = state_file(tmp_path, "127.0.0.1:3000", {"eu-west": ["127.0.0.1:3101", "x:1"]})
    environ = {"EDGEKV_EDGE_EU_WEST": "127.0.0.1:2101", "EDGEKV_STATE_FILE": str(path)}

    assert locate_edge("eu-west", "127.0.0.1:1101", environ) == "127.0.0.1:1101"
    assert locate_edge("eu-west", None, environ) == "127.0.0.1:2101"
    assert locate_edge("eu-west", None, {"EDGEKV_STATE_FILE": str(path)}) == "127.0.0.1:3101"


def test_the_variable_of_another_region_is_not_used(tmp_path: Path) -> None:
    environ = {
        "EDGEKV_EDGE_US_EAST": "127.0.0.1:2101",
        "EDGEKV_STATE_FILE": str(tmp_path / "none.json"),
    }

    with pytest.raises(ClusterNotFoundError) as caught:
        locate_edge("eu-west", None, environ)
    assert "EDGEKV_EDGE_EU_WEST" in str(caught.value)


def test_no_central_anywhere_names_all_three_ways(tmp_path: Path) -> None:
    environ = {"EDGEKV_STATE_FILE": str(tmp_path / "missing.json")}

    with pytest.raises(ClusterNotFoundError) as caught:
        locate_central(None, environ)

    message = str(caught.value)
    assert "\n" not in message
    for way in ("--central", "EDGEKV_CENTRAL", "edgekv up"):
        assert way in message, f"{way!r} missing from {message!r}"


def test_no_edge_anywhere_names_all_three_ways(tmp_path: Path) -> None:
    environ = {"EDGEKV_STATE_FILE": str(tmp_path / "missing.json")}

    with pytest.raises(ClusterNotFoundError) as caught:
        locate_edge("eu-west", None, environ)

    message = str(caught.value)
    assert "\n" not in message
    for way in ("'eu-west'", "--edge", "EDGEKV_EDGE_EU_WEST", "edgekv up"):
        assert way in message, f"{way!r} missing from {message!r}"


def test_a_state_file_without_the_region_lists_the_regions_it_has(tmp_path: Path) -> None:
    path = state_file(tmp_path, "127.0.0.1:3000", {"us-east": ["a:1"], "ap-south": ["b:1"]})

    with pytest.raises(ClusterNotFoundError) as caught:
        locate_edge("eu-west", None, {"EDGEKV_STATE_FILE": str(path)})

    message = str(caught.value)
    assert str(path) in message and "'eu-west'" in message and "ap-south, us-east" in message


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"edges": {}}', '{"central": "x", "edges": 1}']
)
def test_a_broken_state_file_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ClusterNotFoundError) as caught:
        locate_central(None, {"EDGEKV_STATE_FILE": str(path)})

    message = str(caught.value)
    assert str(path) in message and "not a cluster state file" in message


def test_the_state_file_defaults_to_the_home_folder(tmp_path: Path) -> None:
    assert state_file_path({}) == Path.home() / ".edgekv" / "cluster.json"
    assert state_file_path({"EDGEKV_STATE_FILE": str(tmp_path / "s.json")}) == (tmp_path / "s.json")
    assert read_state({"EDGEKV_STATE_FILE": str(tmp_path / "s.json")}) is None


def test_cluster_state_round_trips_through_json(tmp_path: Path) -> None:
    state = ClusterState("127.0.0.1:7000", {"eu-west": ["127.0.0.1:7101", "127.0.0.1:7102"]})

    assert ClusterState.from_json(state.to_json(), tmp_path / "s.json") == state


def test_locate_errors_are_value_errors() -> None:
    # The CLI turns ValueError into one "edgekv: error:" line.
    assert issubclass(ClusterNotFoundError, ValueError)
