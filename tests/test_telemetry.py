from prometheus_client import REGISTRY

from gateway.dataplane.telemetry import CallTelemetry, MetricTotals
from gateway.shared.config import Route
from tests.test_session import answered_session, media_packets


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_flushes_add_only_what_is_new():
    session, _ = answered_session()
    totals = MetricTotals()
    telemetry = CallTelemetry(Route(name="telemetry-route", host="127.0.0.1", port=5004), None, totals)
    for packet in media_packets(3):
        session.on_rtp(packet, 100.5)
    session.on_rtp(b"\x80", 100.5)
    session.on_text(b'{"command":"dtmf"}', 100.5)
    session.on_text(b'{"command":"made-up-by-a-peer"}', 100.5)
    telemetry.flush(session)
    telemetry.flush(session)  # nothing new: nothing added
    assert sample("gateway_rtp_packets_total", route="telemetry-route", direction="in") == 0  # not yet published
    totals.publish()
    assert sample("gateway_rtp_packets_total", route="telemetry-route", direction="in") == 3
    assert sample("gateway_rtp_dropped_packets_total", route="telemetry-route", reason="too_short") == 1
    assert sample("gateway_commands_ignored_total", command="dtmf") >= 1
    assert sample("gateway_commands_ignored_total", command="other") >= 1  # peers cannot mint label values
    assert sample("gateway_commands_ignored_total", command="made-up-by-a-peer") == 0
    for packet in media_packets(2, first_seq=1003):
        session.on_rtp(packet, 100.6)
    telemetry.flush(session)
    totals.publish()
    assert sample("gateway_rtp_packets_total", route="telemetry-route", direction="in") == 5
    assert sample("gateway_ws_frames_total", route="telemetry-route", direction="out") == 1 + 5  # answer + audio


def test_a_publish_writes_each_series_once_with_every_calls_sum():
    totals = MetricTotals()
    written: list[int] = []

    class Series:
        def inc(self, amount: int) -> None:
            written.append(amount)

    series = Series()
    for amount in (3, 4, 5):  # three calls' deltas on one series
        totals.add(series, amount)
    totals.publish()
    totals.publish()  # nothing new
    assert written == [12]
