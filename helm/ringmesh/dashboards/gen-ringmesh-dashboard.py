#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Writes ringmesh-dashboard.json (Grafana dashboard schema 39) next to this file: the
# dashboard's source, so panels stay uniform. Run it after editing; commit both.
import json, os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'destination_service=~"$service"'
panels, y = [], 0


def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def ts(title, desc, targets, unit="short", w=12, x=0, stack=False):
    p = {
        "type": "timeseries", "title": title, "description": desc, "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {
            "drawStyle": "line", "fillOpacity": 10 if stack else 0,
            "stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                    for i, (e, l) in enumerate(targets)],
    }
    panels.append(p)


def stat(title, desc, expr, unit="short", w=6, x=0):
    panels.append({
        "type": "stat", "title": title, "description": desc, "datasource": DS,
        "gridPos": {"h": 4, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area"},
        "targets": [{"datasource": DS, "expr": expr, "refId": "A"}],
    })


row("Requests")
stat("Request rate", "Requests per second through ringmesh (reporter=source: each request once).",
     f'round(sum(rate(istio_requests_total{{reporter="source",{SEL}}}[$__rate_interval])), 0.001)',
     "reqps", x=0)
stat("Success rate", "Share of requests not answered with a 5xx.",
     f'sum(rate(istio_requests_total{{reporter="source",{SEL},response_code!~"5.."}}[$__rate_interval])) / '
     f'sum(rate(istio_requests_total{{reporter="source",{SEL}}}[$__rate_interval]))', "percentunit", x=6)
stat("Local replies", "Requests ringmesh answered itself (overflow UO, timeout UT, no healthy upstream UH, ...).",
     f'sum(rate(istio_requests_total{{reporter="source",{SEL},response_flags!="-"}}[$__rate_interval])) or vector(0)',
     "reqps", x=12)
stat("Series overflow", "Samples counted in an overflow series because rm_stats was full (should stay 0).",
     'sum(ringmesh_stats_overflow_total)', x=18)
y += 4
ts("Requests by service, version and code", "Per destination service, version and response code.",
   [(f'sum by (destination_service, destination_version, response_code) '
     f'(rate(istio_requests_total{{reporter="source",{SEL}}}[$__rate_interval]))',
     "{{destination_service}} {{destination_version}} {{response_code}}")], "reqps", w=12, x=0)
ts("Requests by response flags", "Envoy response flags: UO overflow, UT timeout, UH no healthy upstream, UF connect failure, NR no route ...",
   [(f'sum by (destination_service, response_flags) '
     f'(rate(istio_requests_total{{reporter="source",{SEL}}}[$__rate_interval]))',
     "{{destination_service}} {{response_flags}}")], "reqps", w=12, x=12)
y += 8
ts("Latency p50 / p90 / p99 by service and version", "From istio_request_duration_milliseconds (Envoy's buckets).",
   [(f'histogram_quantile({q}, sum by (le, destination_service, destination_version) '
     f'(rate(istio_request_duration_milliseconds_bucket{{reporter="source",{SEL}}}[$__rate_interval])))',
     "p%s {{destination_service}} {{destination_version}}" % n)
    for q, n in (("0.50", "50"), ("0.90", "90"), ("0.99", "99"))], "ms", w=24, x=0)
y += 8
row("Data path")
ts("Data-path decisions", "What the kernel programs did with each connect (rm_dpstats): redirected to the proxy, "
   "left alone (not_included, excluded, port_excluded, self), failed open (stale heartbeat, orig_full).",
   [('sum by (decision) (rate(ringmesh_datapath_decisions_total[$__rate_interval]))', "{{decision}}")],
   "ops", w=12, x=0)
ts("Fail-open decisions", "Connections left unproxied because ringmeshd looked dead (stale) or the original-destination map was full.",
   [('sum by (decision) (rate(ringmesh_datapath_decisions_total{decision=~"stale|orig_full"}[$__rate_interval]))',
     "{{decision}}")], "ops", w=12, x=12)
y += 8
row("Circuit breakers")
ts("Connections, pending and active requests", "Live breaker state per pool (service, subset).",
   [(f'sum by (destination_service, subset) (ringmesh_breaker_connections{{{SEL}}})', "connections {{destination_service}} {{subset}}"),
    (f'sum by (destination_service, subset) (ringmesh_breaker_pending{{{SEL}}})', "pending {{destination_service}} {{subset}}"),
    (f'sum by (destination_service, subset) (ringmesh_breaker_requests_active{{{SEL}}})', "active {{destination_service}} {{subset}}")],
   w=8, x=0)
ts("Overflows", "Limits reached: pending/requests overflows are 503 UO; connections means the request waited.",
   [(f'sum by (destination_service, subset, limit) (rate(ringmesh_breaker_overflows_total{{{SEL}}}[$__rate_interval]))',
     "{{destination_service}} {{subset}} {{limit}}")], "ops", w=8, x=8)
ts("Outlier ejections", "Hosts ejected now, and the ejection rate.",
   [(f'sum by (destination_service, subset) (ringmesh_breaker_hosts_ejected{{{SEL}}})', "ejected {{destination_service}} {{subset}}"),
    (f'sum by (destination_service, subset) (rate(ringmesh_breaker_ejections_total{{{SEL}}}[$__rate_interval]))',
     "ejections/s {{destination_service}} {{subset}}")], w=8, x=16)
y += 8
row("Request mirroring")
ts("Shadow requests", "Copies of requests whose route mirrors them (mirror, mirrorPercentage), sent to the "
   "mirror destination with Host -shadow, and the responses read back (and dropped). Their status codes "
   "count in istio_requests_total of the mirror destination.",
   [('sum(rate(ringmesh_mirror_requests_total[$__rate_interval]))', "sent"),
    ('sum(rate(ringmesh_mirror_responses_total[$__rate_interval]))', "answered")], "reqps", w=12, x=0)
ts("Shadows skipped and failed", "Skipped: limit (--max-mirrors in flight per worker), body (not kept whole), "
   "overflow or no_healthy_upstream (the mirror's breaker), resources. Failed: connect, reset, timeout, "
   "protocol. The client's own request is never affected.",
   [('sum by (reason) (rate(ringmesh_mirror_skipped_total[$__rate_interval]))', "skipped {{reason}}"),
    ('sum by (reason) (rate(ringmesh_mirror_failed_total[$__rate_interval]))', "failed {{reason}}")],
   "reqps", w=12, x=12)
y += 8
row("Configuration")
ts("Configuration generation", "Generation live in ringmeshd and the one the CLI last wrote; a gap that lasts means an apply was refused.",
   [('max by (instance) (ringmesh_config_generation)', "live {{instance}}"),
    ('max by (instance) (ringmesh_config_store_generation)', "written {{instance}}")], w=8, x=0)
ts("Apply latency", "From `ringmesh apply` flipping the generation to ringmeshd serving it.",
   [('histogram_quantile(0.5, sum by (le) (increase(ringmesh_config_apply_duration_seconds_bucket[1h])))', "p50"),
    ('histogram_quantile(0.99, sum by (le) (increase(ringmesh_config_apply_duration_seconds_bucket[1h])))', "p99")],
   "s", w=8, x=8)
ts("Applies and rejections", "Configurations made live, and refused.",
   [('sum(increase(ringmesh_config_applies_total[1h]))', "applied"),
    ('sum(increase(ringmesh_config_rejected_total[1h]))', "rejected")], w=8, x=16)
y += 8

for i, p in enumerate(panels):
    p["id"] = i + 1

dash = {
    "__inputs": [], "annotations": {"list": []}, "editable": False, "graphTooltip": 1,
    "links": [], "panels": panels, "refresh": "10s", "schemaVersion": 39, "style": "dark",
    "tags": ["ringmesh", "istio"], "time": {"from": "now-30m", "to": "now"},
    "timepicker": {}, "timezone": "", "title": "ringmesh", "uid": "ringmesh-node", "version": 1,
    "templating": {"list": [
        {"hide": 0, "includeAll": False, "multi": False, "name": "datasource", "options": [],
         "query": "prometheus", "refresh": 1, "regex": "", "type": "datasource",
         "current": {}, "label": "Data source"},
        {"hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "name": "service",
         "label": "Service", "datasource": DS, "refresh": 2, "sort": 1, "type": "query",
         "current": {"text": "All", "value": "$__all"}, "options": [],
         "definition": "label_values(istio_requests_total, destination_service)",
         "query": {"query": "label_values(istio_requests_total, destination_service)",
                   "refId": "service"}},
    ]},
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ringmesh-dashboard.json")
with open(out, "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
