"""Config: environment expansion, complete validation, errors that say where and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_sinks import PLUGINS, REPO

from boltrouter.config import QUEUE_SCHEMA, ConfigErrors, load_config, parse_duration, top_schema


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(f"plugins_dir: {PLUGINS}\n" + text)
    return load_config(path, environ=environ or {})


def errors(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigErrors) as err:
        load(tmp_path, text, environ)
    return [str(e) for e in err.value.errors]


def test_the_example_config_is_valid_and_summarized() -> None:
    config = load_config(REPO / "config.example.yaml", environ={})
    summary = config.summary()
    assert "sinks: 3 (archive, lines, console)" in summary
    assert "rules: 3" in summary and "routes: 5" in summary
    assert "feeds: " in summary and "odds" in summary
    assert "the built-in simulator will be used" in summary
    assert config.unset_env == ["BOLTODDS_API_KEY"]


def test_variables_and_defaults_expand_from_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, """
state_dir: ${STATE:-/var/lib/boltrouter}
shutdown_grace: ${GRACE:-5s}
http: {enabled: "${HTTP_ON:-no}", port: "${HTTP_PORT}", token: "${TOKEN:-}"}
sinks:
  archive: {type: sqlite, path: "${DATA}/archive-${SITE:-home}.db"}
""", environ={"DATA": "/srv/data", "HTTP_PORT": "9100", "GRACE": "", "HTTP_ON": "yes"})
    assert config.data["state_dir"] == "/var/lib/boltrouter"
    assert config.data["shutdown_grace"] == 5.0   # set but empty takes the default
    assert config.data["http"]["port"] == 9100     # text from the environment becomes a number
    assert config.data["http"]["enabled"] is True
    assert config.sinks["archive"][1]["path"] == "/srv/data/archive-home.db"
    assert config.unset_env == []


def test_an_unset_variable_expands_to_empty_and_is_noted(tmp_path: Path) -> None:
    config = load(tmp_path, "boltodds: {api_key: '${BOLTODDS_API_KEY}'}\n")
    assert config.api_key == "" and config.use_simulator
    assert config.unset_env == ["BOLTODDS_API_KEY"]


def test_every_error_is_reported_with_line_path_and_what_is_valid(tmp_path: Path) -> None:
    found = errors(tmp_path, """
sinks:
  zapier: {type: sqlite, path: z.db}
  archive: {type: sqlite, path: x.db, batch_size: lots, bogus: 1}
  lines: {type: csvv, path: x.csv}
rules:
  moves: {type: line_move, window: 10 minutes}
routes:
  - name: a
    when: {type: score.changed, game: "[abc"}
    to: archive
  - name: b
    when: {type: score.changed}
    if: "{{ data.x > }}"
    to: [archive, zappier]
  - name: c
    when: {typo: score.changed}
    throttle: {every: soon}
    too: lines
shutdown_grace: forever
htpp: {}
""")
    f = "config.yaml"
    expected = [
        f"{f}:5: sinks.archive.bogus: unknown key 'bogus'",
        f"{f}:5: sinks.archive.batch_size: must be an integer, not 'lots'",
        f"{f}:6: sinks.lines.type: unknown sink type 'csvv'; did you mean 'csv'? (valid: console, csv, flaky",
        f"{f}:8: rules.moves.window: '10 minutes' is not a duration (examples: 500ms, 30s",
        f"{f}:11: routes[0].when.game: glob '[abc' has an unclosed '['",
        f"{f}:15: routes[1].if: template does not compile",
        f"{f}:16: routes[1].to[1]: unknown sink 'zappier'; did you mean 'zapier'? "
        "(valid: archive, lines, zapier)",
        f"{f}:18: routes[2].when.typo: unknown field 'typo'; did you mean 'type'?",
        f"{f}:19: routes[2].throttle.every: 'soon' is not a duration",
        f"{f}:20: routes[2].too: unknown key 'too'; did you mean 'to'?",
        f"{f}:21: shutdown_grace: 'forever' is not a duration",
        f"{f}:22: htpp: unknown key 'htpp'; did you mean 'http'?",
    ]
    for want in expected:
        assert any(want in got for got in found), f"{want!r} not in {found}"
    # sorted by line, and a sink with errors of its own is not reported again by routes
    lines = [int(e.split(":")[1]) for e in found]
    assert lines == sorted(lines)
    assert not any("unknown sink 'lines'" in e for e in found)
    assert all(e.startswith(str(tmp_path / f)) for e in found)


def test_wrong_types_say_what_was_given_and_what_is_expected(tmp_path: Path) -> None:
    found = errors(tmp_path, """
simulator: {games: many, updates_per_second: -1, enabled: sometimes}
http: {port: [8080]}
routes: {name: not-a-list}
sinks:
  archive: sqlite
""")
    text = "\n".join(found)
    assert "simulator.games: must be an integer, not 'many'" in text
    assert "simulator.updates_per_second: must be at least 0, not -1" in text
    assert "simulator.enabled: 'sometimes' is not allowed (valid: always, auto, never)" in text
    assert "http.port: must be an integer, not a list" in text
    assert "routes: must be a list" in text
    assert "sinks.archive: must be a mapping with at least 'type' (valid: " in text


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    found = errors(tmp_path, """
sinks:
  archive: {type: sqlite, path: a.db}
  archive: {type: csv, path: a.csv}
""")
    assert any(":5: sinks.archive: is given twice (first on line 4)" in e for e in found)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    found = errors(tmp_path, "sinks:\n  archive: {type: sqlite, path: a.db\nroutes: []\n")
    assert len(found) == 1
    assert "config.yaml:" in found[0] and "invalid YAML" in found[0]


def test_a_config_that_is_not_a_mapping_says_what_it_should_be(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert "must be a mapping of sections" in str(err.value)


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as err:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the config file: No such file or directory" in str(err.value)


def test_a_plugins_dir_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("plugins_dir: ./missing\n")
    with pytest.raises(ConfigErrors) as err:
        load_config(path, environ={})
    assert "c.yaml:1: plugins_dir: plugins_dir" in str(err.value)
    assert "is not a folder" in str(err.value)


@pytest.mark.parametrize("where", [
    "boltodds: {api_key: [SECRET_VALUE_1234]}",
    "http: {token: {nested: SECRET_VALUE_1234}}",
])
def test_a_secret_with_the_wrong_type_is_never_quoted(tmp_path: Path, where: str) -> None:
    found = errors(tmp_path, where + "\n")
    assert found and not any("SECRET_VALUE_1234" in e for e in found)
    assert any("must be a string" in e for e in found)


def test_relative_plugins_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    (folder / "plugins").mkdir(parents=True)
    (folder / "plugins" / "console_sink.py").write_text((PLUGINS / "console_sink.py").read_text())
    path = folder / "c.yaml"
    path.write_text("plugins_dir: plugins\nsinks:\n  screen: {type: console}\n")
    assert "screen" in load_config(path, environ={}).sinks


@pytest.mark.parametrize("text,seconds", [
    ("250ms", 0.25), ("30s", 30), ("10m", 600), ("1.5h", 5400), ("1d", 86400), (45, 45),
    ("12", 12)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["ten seconds", "-5s", "5 weeks", True, -1])
def test_bad_durations_are_refused_with_examples(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_the_configuration_reference_covers_every_key_of_the_schema() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration reference"):]
    section = section[:section.index("\n## ", 1)]
    top = top_schema()
    expected = list(top) + list(QUEUE_SCHEMA)
    for nested in ("simulator", "http", "summary", "log"):
        expected += list(top[nested].schema or {})
    missing = [key for key in expected if f"`{key}`" not in section]
    assert not missing, f"keys missing from the README configuration reference: {missing}"
