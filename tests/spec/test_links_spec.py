"""An environment's ``links:`` are URL templates (domain/links.py): one that could not expand to a
safe link is refused when conveyor.yml loads, naming the link and the fix."""

from __future__ import annotations

import pytest

from conveyor.spec import SpecError, parse_spec

CONFIG = """\
service: shop
run: python -m http.server $PORT
environments:
  production:
    target: {kind: local, port: 18999}
    links:
      Grafana: "TEMPLATE"
"""


def test_known_placeholders_and_literal_braces_load() -> None:
    template = "https://grafana.example.com/d/x?var-service={service}&from={from}&to={to}&v={version}&j={{}}"
    spec = parse_spec(CONFIG.replace("TEMPLATE", template))
    assert spec.environment("production").links == {"Grafana": template}


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("https://grafana.example.com/d/x?release={release}", "unknown placeholder {release}"),
        ("https://grafana.example.com/d/x?from={start}&to={to}", "unknown placeholder {start}"),
        ("javascript:alert({service})", "is not an http(s) URL"),
    ],
)
def test_a_bad_template_is_refused_when_the_config_loads(template: str, says: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(CONFIG.replace("TEMPLATE", template))
    message = str(refused.value)
    assert says in message and "Grafana" in message, message
