import re
from pathlib import Path
from textwrap import dedent

import pytest

from conveyor.errors import InvalidInput, NotFound
from conveyor.spec import CommandSpec, LocalTarget, Problem, SpecError, load_spec, parse_spec
from conveyor.spec.loader import format_problems

DOCS = Path(__file__).resolve().parents[2] / "docs" / "conveyor-yml.md"

FULL_EXAMPLE = """\
service: shop
build: pip install -r requirements.txt
run: python -m shop --port $PORT          # local target: one process per replica
health: {path: /healthz, interval: 1s, successes: 2, timeout: 60s}
environments:
  development: {branch: develop, auto_deploy: true, target: {kind: local, port: 8001, replicas: 2}}
  staging:
    branch: main
    auto_deploy: true
    target: {kind: local, port: 8002, replicas: 2}
    smoke: npm run test:smoke -- --env=staging
  production:
    target: {kind: local, port: 8003, replicas: 2}
    deployers: [release_manager]
    gates:
      reviews: 2
      checks: [tests, lint, security]
      staging_verified: true
      approval: {count: 1, from: [release_manager], self_approval: false}
      checklist: [tests_passing, staging_verified, migrations_reviewed, flags_configured, rollback_plan, \
stakeholders_notified]
      schedule:
        timezone: America/Los_Angeles
        allow: ["Tue-Thu 10:00-15:00"]
        deny: ["Fri 12:00-24:00"]
        holidays: US
        emergency: {approvers: [manager]}
    migrate: alembic upgrade head
    rollout: {strategy: rolling, max_surge: 1}
    quick_rollback: 15m
    tag: {bump: minor}
    links: {Grafana: "https://grafana.example.com/d/shop", Sentry: "https://sentry.example.com/shop"}
    notify:
      - slack: {token: "${SLACK_BOT_TOKEN}", channel: "#deployments"}
      - email: {to: [releases@example.com]}
      - github: {token: "${GITHUB_TOKEN}", repository: acme/shop}
      - webhook:
          url: https://hooks.example.com/conveyor
          secret: "${CONVEYOR_HOOK_SECRET}"
          events: [succeeded, failed, rolled_back]
hotfix: {branch_prefix: hotfix/, reviews: 1}
"""

VALID = """\
service: shop
run: python -m shop
environments:
  staging:
    branch: main
    auto_deploy: true
    target: {kind: local, port: 8002}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(dedent(text), "conveyor.yml")
    return [str(problem) for problem in caught.value.problems]


def test_full_example_loads() -> None:
    spec = parse_spec(FULL_EXAMPLE)
    assert spec.service == "shop"
    assert spec.build == CommandSpec(run="pip install -r requirements.txt")
    assert spec.health.interval == 1.0
    assert list(spec.environments) == ["development", "staging", "production"]
    staging = spec.environment("staging")
    assert staging.target == LocalTarget(port=8002, replicas=2)
    assert staging.step_plan() == ["prepare", "rollout", "smoke", "announce"]
    production = spec.environment("production")
    assert production.quick_rollback == 900.0
    assert production.gates.reviews == 2
    assert production.gates.staging_verified is not None
    assert production.gates.staging_verified.environment == "staging"
    assert production.gates.approval is not None
    assert production.gates.approval.from_ == ["release_manager"]
    assert production.gates.schedule is not None
    assert production.gates.schedule["allow"] == ["Tue-Thu 10:00-15:00"]
    assert production.monitor is None and [n.kind for n in production.notify] == ["slack", "email", "github", "webhook"]
    assert production.step_plan() == ["prepare", "tag", "migrate", "rollout", "announce"]
    assert spec.hotfix is not None
    assert spec.hotfix.merge_back == []


def test_keys_that_do_not_act_yet_are_refused_where_they_are() -> None:
    text = VALID + "  production:\n    target: {kind: command, deploy: ./deploy.sh, status: ./status.sh}\n"
    found = problems_of(text)
    assert [p.split(": ", 1)[0] for p in found] == ["conveyor.yml:9:58"]
    assert all("does not carry out" in p and "remove it" in p for p in found)
    assert "status:" in found[0]


def test_the_documented_example_is_the_tested_one() -> None:
    match = re.search(r"## Full example\n\n```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None
    assert parse_spec(match.group(1)) == parse_spec(FULL_EXAMPLE)


def test_the_documented_error_report_is_what_the_loader_says() -> None:
    pattern = r"For this file:\n\n```yaml\n(.*?)```\n\nthe report is\n\n```\n(.*?)```"
    match = re.search(pattern, DOCS.read_text(), re.DOTALL)
    assert match is not None
    assert problems_of(match.group(1)) == match.group(2).splitlines()


def test_load_spec_reads_a_file_and_names_it_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yml"
    path.write_text(VALID)
    assert load_spec(path).service == "shop"
    path.write_text(VALID + "colour: blue\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}:8:1: unknown key 'colour' at top level (allowed: build, ")


def test_load_spec_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yml"
    path.write_bytes(b"service: caf\xe9\n")
    with pytest.raises(SpecError, match=r":1:1: not UTF-8 text: "):
        load_spec(path)


def test_load_spec_of_a_missing_file() -> None:
    with pytest.raises(NotFound, match="no such file"):
        load_spec("/nonexistent/conveyor.yml")


def test_unknown_key_at_top_level() -> None:
    assert problems_of(VALID + "colour: blue\n") == [
        "conveyor.yml:8:1: unknown key 'colour' at top level "
        "(allowed: build, env, environments, health, hotfix, run, service, templates)"
    ]


def test_unknown_key_nested() -> None:
    text = VALID.replace("    branch: main", "    brnach: main")
    assert problems_of(text) == [
        "conveyor.yml:5:5: unknown key 'brnach' in environments.staging (allowed: auto_deploy, branch, database, "
        "deployers, env, gates, links, migrate, monitor, notify, quick_rollback, rollout, smoke, steps, tag, "
        "target, url)"
    ]


def test_unknown_key_inside_a_target_mapping() -> None:
    text = VALID.replace("port: 8002}", "port: 8002, replica: 2}")
    assert problems_of(text) == [
        "conveyor.yml:7:39: unknown key 'replica' in environments.staging.target "
        "(allowed: host, kind, port, replicas, router)"
    ]


def test_wrong_type() -> None:
    text = VALID + "    gates: {reviews: two}\n"
    assert problems_of(text) == [
        "conveyor.yml:8:22: environments.staging.gates.reviews: expected a whole number, got 'two'"
    ]


def test_bad_duration() -> None:
    text = VALID + "    quick_rollback: 15 minutes\n"
    assert problems_of(text) == [
        "conveyor.yml:8:21: environments.staging.quick_rollback: '15 minutes' is not a duration "
        "(use e.g. 500ms, 30s, 15m, 1h)"
    ]


def test_unknown_environment_in_staging_verified() -> None:
    text = """\
        service: shop
        run: python -m shop
        environments:
          development: {target: {kind: local, port: 8001}}
          staging: {target: {kind: local, port: 8002}}
          production:
            target: {kind: local, port: 8003}
            gates:
              staging_verified: stagign
        """
    assert problems_of(text) == [
        "conveyor.yml:9:25: unknown environment 'stagign' in gates.staging_verified; "
        "defined: development, production, staging"
    ]


def test_missing_service_is_reported_at_the_top_mapping() -> None:
    assert problems_of(VALID.replace("service: shop\n", "")) == [
        "conveyor.yml:1:1: missing required key 'service' at top level"
    ]


def test_missing_top_level_key_is_reported_where_the_mapping_starts() -> None:
    text = "# shop\n\n" + VALID.replace("service: shop\n", "")
    assert problems_of(text) == ["conveyor.yml:3:1: missing required key 'service' at top level"]


def test_missing_key_is_reported_at_its_parent_mapping() -> None:
    text = VALID.replace("{kind: local, port: 8002}", "{kind: local}")
    assert problems_of(text) == ["conveyor.yml:7:13: missing required key 'port' in environments.staging.target"]


def test_auto_deploy_without_branch() -> None:
    text = VALID.replace("    branch: main\n", "")
    assert problems_of(text) == [
        "conveyor.yml:5:18: environments.staging: auto_deploy: true needs a branch (add e.g. branch: main)"
    ]


def test_duplicate_key() -> None:
    text = VALID.replace("    auto_deploy: true\n", "    auto_deploy: true\n    branch: develop\n")
    assert problems_of(text) == [
        "conveyor.yml:7:5: duplicate key 'branch' in environments.staging (first given on line 5)"
    ]


def test_yaml_syntax_error() -> None:
    text = VALID + "    env: {A: 1\n"
    assert problems_of(text) == [
        "conveyor.yml:9:1: YAML syntax error: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping at line 8)"
    ]


def test_a_character_yaml_does_not_allow() -> None:
    assert problems_of("service: shop\nrun: a\x07b\n") == [
        "conveyor.yml:2:7: YAML syntax error: character #x0007: special characters are not allowed"
    ]


def test_design_sketch_unquoted_placeholder_is_a_syntax_error_at_its_brace() -> None:
    text = VALID + "    notify: [{slack: ${SLACK_WEBHOOK_URL}}]\n"
    [problem] = problems_of(text)
    assert problem.startswith("conveyor.yml:8:23: YAML syntax error: expected ',' or '}', but got '{'")


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert problems_of(text) == ["conveyor.yml:1:1: the file is empty; it needs at least service and environments"]


@pytest.mark.parametrize("text", ["- service: shop\n", "shop\n", "\n\n[service, shop]\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert problems_of(text) == [
        "conveyor.yml:1:1: the top level must be a mapping of keys such as service and environments"
    ]


def test_all_problems_are_reported_in_file_order() -> None:
    text = """\
        service: Shop
        run: python -m shop
        environments:
          staging:
            brnach: main
            target: {kind: k8s}
            quick_rollback: soon
            monitor: {for: 30m, rollback_if: {p90_ms: "> 1", error_rate: 2}}
          production:
            branch: main
            branch: release
            target: {kind: command}
            rollout: {strategy: canary, max_surge: 0}
            env: {PORT: 8000}
            steps: [rollout, prepare]
        hotfix: {reviews: many}
        """
    assert problems_of(text) == [
        "conveyor.yml:1:10: service: service name 'Shop' must be 3-63 characters of a-z, 0-9, _ and -, "
        "starting with a letter or digit",
        "conveyor.yml:5:5: unknown key 'brnach' in environments.staging (allowed: auto_deploy, branch, database, "
        "deployers, env, gates, links, migrate, monitor, notify, quick_rollback, rollout, smoke, steps, tag, "
        "target, url)",
        "conveyor.yml:6:13: environments.staging.target: unknown kind 'k8s' (expected one of 'command', 'local')",
        "conveyor.yml:7:21: environments.staging.quick_rollback: 'soon' is not a duration "
        "(use e.g. 500ms, 30s, 15m, 1h)",
        "conveyor.yml:8:39: environments.staging.monitor.rollback_if: unknown metric 'p90_ms' "
        "(use error_rate, p50_ms, p95_ms, p99_ms)",
        "conveyor.yml:8:66: environments.staging.monitor.rollback_if.error_rate: 2 is not a threshold "
        '(use e.g. "> 2%" or "> 800")',
        "conveyor.yml:11:5: duplicate key 'branch' in environments.production (first given on line 10)",
        "conveyor.yml:12:13: missing required key 'deploy' in environments.production.target",
        "conveyor.yml:13:25: environments.production.rollout.strategy: expected 'rolling' or 'blue_green', "
        "got 'canary'",
        "conveyor.yml:13:44: environments.production.rollout.max_surge: must be at least 1, got 0",
        'conveyor.yml:14:17: environments.production.env.PORT: expected text, got 8000 (quote it: "8000")',
        "conveyor.yml:15:12: environments.production.steps: steps must keep the order prepare, tag, migrate, "
        "rollout, smoke, announce (a subset is fine), got rollout, prepare",
        "conveyor.yml:16:19: hotfix.reviews: expected a whole number, got 'many'",
    ]


def test_rules_across_environments_are_all_reported() -> None:
    text = """\
        service: shop
        environments:
          staging: {target: {kind: local, port: 8002}}
          production:
            target: {kind: local, port: 8002}
            gates: {staging_verified: {environment: qa}}
        """
    assert problems_of(text) == [
        "conveyor.yml:3:21: environments.staging.target: a local target needs the top-level run command "
        "(add e.g. run: python -m app)",
        "conveyor.yml:5:13: environments.production.target: a local target needs the top-level run command "
        "(add e.g. run: python -m app)",
        "conveyor.yml:5:33: environments.production.target.port: port 8002 is already used by environments.staging",
        "conveyor.yml:6:31: unknown environment 'qa' in gates.staging_verified; defined: production, staging",
    ]


def test_bad_names_are_reported_at_the_key() -> None:
    text = VALID.replace("  staging:", "  Staging:")
    assert problems_of(text) == [
        "conveyor.yml:4:3: environments: environment name 'Staging' must be 2-32 characters of a-z, 0-9, "
        "_ and -, starting with a letter"
    ]


def test_a_command_may_not_be_a_number() -> None:
    assert problems_of(VALID + "    smoke: 5\n") == [
        "conveyor.yml:8:12: environments.staging.smoke: expected a command (text, or a mapping with run "
        "and timeout), got 5"
    ]
    assert problems_of(VALID + "    migrate: 5\n") == [
        "conveyor.yml:8:14: environments.staging.migrate: expected a command (text, or a mapping with run, "
        "sql, down and the other keys of migrate), got 5"
    ]


def test_migrate_rules_are_squawk_rule_names() -> None:
    text = VALID + "    migrate: {run: alembic upgrade head, rules: [ban-drop-column, no-such-rule]}\n"
    [problem] = problems_of(text)
    assert "unknown squawk rule 'no-such-rule'" in problem


def test_merge_keys_apply_and_own_keys_win() -> None:
    text = """\
        service: shop
        run: python -m shop
        environments:
          staging: &base
            branch: main
            auto_deploy: true
            target: {kind: local, port: 8002}
          production:
            <<: *base
            auto_deploy: false
            target: {kind: local, port: 8003}
        """
    production = parse_spec(dedent(text)).environment("production")
    assert (production.branch, production.auto_deploy, production.target) == ("main", False, LocalTarget(port=8003))


def test_spec_error_is_invalid_input_listing_every_problem() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spec("service: shop\nenvironments: {}\ncolour: blue\n", "svc/conveyor.yml")
    assert str(caught.value) == (
        "svc/conveyor.yml:2:15: environments: must not be empty\n"
        "svc/conveyor.yml:3:1: unknown key 'colour' at top level "
        "(allowed: build, env, environments, health, hotfix, run, service, templates)"
    )


def test_problem_and_format_problems() -> None:
    problems = [Problem("a.yml", 1, 2, "first"), Problem("a.yml", 3, 4, "second")]
    assert str(problems[0]) == "a.yml:1:2: first"
    assert format_problems(problems) == "a.yml:1:2: first\na.yml:3:4: second"
