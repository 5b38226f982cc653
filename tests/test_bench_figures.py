"""The provisioning benchmark's arithmetic and table, on made-up timings (nothing is run)."""

from __future__ import annotations

import math
from typing import Any

from bench.provision import render
from bench.provisioning.figures import Latency, Wave, p90


def test_p90_interpolates_and_takes_a_single_sample_as_is() -> None:
    assert p90([0.3]) == 0.3
    assert math.isclose(p90([1.0, 2.0, 3.0, 4.0, 5.0]), 4.6)


def test_wave_rate_counts_from_the_start_to_the_last_certificate() -> None:
    wave = Wave(size=4, done_at=[0.5, 1.5, 2.0, 3.0], verified=4)
    assert wave.per_minute == 80.0
    assert wave.time_to(0.5) == 1.5
    assert wave.time_to(1.0) == 3.0
    assert wave.over_time() == [1, 3, 4, 4]


def test_an_unfinished_wave_says_so() -> None:
    wave = Wave(size=4, done_at=[1.0], verified=1, failures=["b: not served"])
    assert wave.time_to(1.0) is None
    assert wave.to_json()["completed"] == 1
    assert Wave(size=2, done_at=[], verified=0).per_minute == 0.0


def test_table_shows_both_sides_ratios_and_targets() -> None:
    latency = {
        "linkcert": Latency(0.3, [0.2, 0.25, 0.3]).to_json(),
        "caddy": Latency(0.8, [0.5, 0.5, 0.5]).to_json(),
    }
    wave = {
        "linkcert": Wave(2, [1.0, 2.0], 2, cpu_seconds={"linkcert": 1.0}).to_json(),
        "caddy": Wave(2, [10.0, 20.0], 2, cpu_seconds={"caddy": 0.1}).to_json(),
    }
    report: dict[str, Any] = {
        "settings": {"wave": 2},
        "latency": latency,
        "wave": wave,
        "ratios": {"latency_median": 0.5, "latency_p90": 0.58, "wave_per_minute": 10.0},
        "targets": {"latency_met": True, "wave_met": True},
    }
    table = render(report)
    assert "linkcert/caddy" in table
    assert "0.50" in table and "10.00" in table
    assert "target (a) latency ratio <= 1: met" in table
    assert "2/2" in table


def test_the_dns01_row_stands_next_to_http01_and_caddy() -> None:
    report: dict[str, Any] = {
        "settings": {"wave": 1},
        "latency": {"linkcert": Latency(0.3, [0.25]).to_json()},
        "wave": {"linkcert": Wave(1, [1.0], 1).to_json()},
        "dns01": {
            "latency": Latency(0.4, [0.35, 0.4]).to_json(),
            "http01_median_s": 0.25,
            "caddy_median_s": 0.5,
            "difference_s": 0.125,
            "ratio_to_http01": 1.5,
            "ratio_to_caddy": 0.75,
        },
    }
    table = render(report)
    assert "DNS-01 through a delegation" in table
    assert "+0.12 s (1.50x) against HTTP-01, 0.75x Caddy's" in table
