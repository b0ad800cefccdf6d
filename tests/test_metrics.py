"""The core thread's lock-free histogram exposes exactly what prometheus-client's Histogram would."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.metrics import CoreHistogram

BUCKETS = (0.0001, 0.001, 0.01)
VALUES = (0.00005, 0.0001, 0.0005, 0.001, 0.002, 0.01, 0.5, 2.0)  # bounds themselves included


def _series(registry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if line.startswith("h_") and "_created" not in line)


def test_a_core_histogram_reads_like_a_prometheus_histogram_with_the_same_observations():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    core = CoreHistogram("h", "doc", ("hop",), buckets=BUCKETS, registry=ours)
    reference = Histogram("h", "doc", ["hop"], buckets=BUCKETS, registry=theirs)
    for i, v in enumerate(VALUES):
        hop = "a" if i % 3 else "b"
        core.labels(hop).observe(v)
        reference.labels(hop).observe(v)
    assert _series(ours) == _series(theirs)


def test_an_unlabelled_core_histogram_observes_directly():
    registry = CollectorRegistry()
    h = CoreHistogram("h", "doc", buckets=BUCKETS, registry=registry)
    h.observe(0.0005)
    assert 'h_bucket{le="0.001"} 1.0' in _series(registry)
    assert "h_count 1.0" in _series(registry)
