"""The Grafana dashboard against the metrics a node actually exports (node.metrics.Metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from node.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "notarychain-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCRAPE_LABELS = {"instance", "job"}
METRIC = re.compile(r"\bnotarychain_[a-z0-9_]+\b")
REQUIRED = {
    "notarychain_height",
    "notarychain_view",
    "notarychain_view_changes_total",
    "notarychain_commit_latency_seconds_bucket",
    "notarychain_transactions_committed_total",
    "notarychain_transactions_admitted_total",
    "notarychain_transactions_refused_total",
    "notarychain_mempool_size",
    "notarychain_execution_backlog_blocks",
    "notarychain_peer_reachable",
    "notarychain_peer_lag_blocks",
    "notarychain_storage_bytes",
    "notarychain_catch_up_target_height",
}


def exported() -> dict[str, set[str]]:
    """Every series name a node's /metrics can show -> its label names."""
    metrics = Metrics()
    labels: dict[str, tuple[str, ...]] = {
        wrapper._name: tuple(wrapper._labelnames)  # no public accessor
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        own = set(labels[family.name])
        if family.type == "counter":
            names[family.name + "_total"] = own
        elif family.type == "histogram":
            names[family.name + "_bucket"] = own | {"le"}
            names[family.name + "_sum"] = own
            names[family.name + "_count"] = own
        else:
            assert family.type == "gauge", family.type
            names[family.name] = own
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])  # collapsed rows hold theirs
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def test_the_exported_names_follow_prometheus_client_suffixes() -> None:
    names = exported()
    assert "notarychain_view_changes_total" in names
    assert "notarychain_view_changes" not in names
    assert names["notarychain_commit_latency_seconds_bucket"] == {"le"}
    assert names["notarychain_transactions_refused_total"] == {"code"}
    assert names["notarychain_peer_lag_blocks"] == {"peer"}


def test_a_prometheus_datasource_variable_drives_every_panel(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE


def test_every_metric_in_an_expression_is_one_a_node_exports(dashboard: dict[str, Any]) -> None:
    names = exported()
    used = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    assert used, "no metric is used"
    assert used <= set(names), f"not exported by node/metrics.py: {sorted(used - set(names))}"
    assert used >= REQUIRED, f"no panel for {sorted(REQUIRED - used)}"


def test_grouping_labels_exist_on_the_metrics_grouped(dashboard: dict[str, Any]) -> None:
    names = exported()
    for expr in expressions(dashboard):
        available = set(SCRAPE_LABELS)
        for name in METRIC.findall(expr):
            available |= names[name]
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            assert labels <= available, f"{expr}: no label {sorted(labels - available)}"


def test_legends_name_labels_the_series_keep(dashboard: dict[str, Any]) -> None:
    names = exported()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            groups = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            if groups:  # aggregated: only the grouping labels are left
                kept = {label.strip() for g in groups for label in g.split(",")} - {"le"}
            elif re.match(r"\s*(sum|avg|max|min|count)\b", expr):
                kept = set()
            else:
                kept = set(SCRAPE_LABELS)
                for name in METRIC.findall(expr):
                    kept |= names[name]
            legend = target.get("legendFormat", "")
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
                assert label in kept, f"{panel['title']}: {legend!r} but {expr} keeps {kept}"


def test_latency_quantiles_come_from_the_histogram_buckets(dashboard: dict[str, Any]) -> None:
    quantiles = [e for e in expressions(dashboard) if "histogram_quantile" in e]
    assert {re.search(r"histogram_quantile\(\s*([0-9.]+)", e).group(1) for e in quantiles} >= {
        "0.5",
        "0.99",
    }
    for expr in quantiles:
        assert "rate(notarychain_commit_latency_seconds_bucket" in expr
        assert re.search(r"by \((?:[^)]*\b)?le\b", expr), f"{expr}: keep le when summing"


def test_counters_are_shown_as_rates_never_raw(dashboard: dict[str, Any]) -> None:
    for expr in expressions(dashboard):
        for name in METRIC.findall(expr):
            if name.endswith(("_total", "_bucket", "_sum", "_count")):
                assert re.search(rf"\b(?:rate|increase|irate)\(\s*{name}\b", expr), expr
        assert expr.count("(") == expr.count(")"), expr


def test_refusals_are_broken_down_by_code(dashboard: dict[str, Any]) -> None:
    refused = [e for e in expressions(dashboard) if "notarychain_transactions_refused_total" in e]
    assert refused
    assert all(re.search(r"by \(code\)", e) for e in refused)


def test_layout_is_valid(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["title"]
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
