"""The node's own measures and health rules, without ROS."""

from detrack_ros.node_statistics import NodeStatistics, OK, STALE_INPUT_SEC, WARN


def test_health_warns_on_stale_input_stalls_and_a_lost_target():
    """No images: warn; images but no output while tracking: warn; lost: warn; else ok."""
    stats = NodeStatistics()
    stats.received(100.0)
    assert stats.health('idle', 100.5, 0.0, 'image') == (OK, 'idle')
    level, message = stats.health('idle', 100.0 + STALE_INPUT_SEC + 1, 0.0, 'image')
    assert level == WARN and 'no image on image' in message
    stats.tracking_since = 100.0
    stats.received(103.0)
    level, message = stats.health('tracking', 103.5, 0.0, 'image')
    assert level == WARN and 'none was processed' in message
    # A slow max_rate stretches the stall limit to two of its periods.
    assert stats.health('tracking', 103.5, 0.25, 'image') == (OK, 'tracking')
    stats.last_processed = 103.4
    assert stats.health('lost', 103.5, 0.0, 'image') == (WARN, 'target lost')
    assert stats.health('disabled', 200.0, 0.0, 'image') == (OK, 'disabled')


def test_values_report_rates_and_latency_percentiles():
    """Published outputs feed the node latency and age windows; empty windows are blank."""
    stats = NodeStatistics()
    assert stats.values(0.0)['latency_ms_median'] == ''
    for age in (10.0, 20.0, 30.0):
        stats.published(0.0, age)
    values = stats.values(1.0)
    assert values['latency_ms_median'] == '20.00'
    assert set(values) >= {'input_rate_hz', 'processing_rate_hz', 'inference_ms_p95'}
