"""/metrics in the Prometheus text format, labelled by route template, never by raw path."""
import re

import requests

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


def parse(text):
    """Returns {(name, labels-string): value}, checking every line's syntax and TYPE order."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        float(m.group(3))
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in types or base in types, f"sample before its TYPE: {line}"
        samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return samples, types


def get_metrics(server):
    r = requests.get(server.http + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def test_format_and_request_counters(server):
    for _ in range(3):
        requests.get(server.http + "/healthz")
    requests.get(server.http + "/does-not-exist/12345")
    text = get_metrics(server)
    samples, types = parse(text)
    assert types["mediaedge_http_requests_total"] == "counter"
    assert types["mediaedge_http_request_duration_seconds"] == "histogram"
    assert samples[("mediaedge_http_requests_total", '{route="/healthz",status="200"}')] >= 3
    assert samples[("mediaedge_http_requests_total", '{route="other",status="404"}')] >= 1
    assert "12345" not in text and "does-not-exist" not in text
    assert samples[("mediaedge_build_info", '{version="0.1.0"}')] == 1
    assert ("mediaedge_http_requests_in_flight", "") in samples


def test_histogram_is_cumulative(server):
    for _ in range(5):
        requests.get(server.http + "/healthz")
    samples, _ = parse(get_metrics(server))
    buckets = [(k[1], v) for k, v in samples.items()
               if k[0] == "mediaedge_http_request_duration_seconds_bucket" and 'route="/healthz"' in k[1]]
    assert buckets[-1][0].endswith('le="+Inf"}')
    values = [v for _, v in buckets]
    assert values == sorted(values)
    count = samples[("mediaedge_http_request_duration_seconds_count", '{route="/healthz"}')]
    assert values[-1] == count >= 5


def test_bytes_counted(server):
    requests.get(server.http + "/healthz")
    samples, _ = parse(get_metrics(server))
    assert samples[("mediaedge_http_response_body_bytes_total", '{route="/healthz"}')] >= 15
