import json
import logging

from gateway.shared.logs import JsonFormatter, log_event


def test_one_json_object_a_line_with_the_event_fields(caplog):
    logger = logging.getLogger("gateway.test")
    with caplog.at_level(logging.INFO, logger="gateway.test"):
        log_event(logger, logging.INFO, "call.answered", call_id="c-1", sample_rate=16000)
    line = JsonFormatter().format(caplog.records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["event"], entry["call_id"], entry["sample_rate"], entry["level"]) == (
        "call.answered", "c-1", 16000, "info")
    assert entry["ts"].endswith("Z")
    assert isinstance(entry["pid"], int)


def test_disabled_levels_cost_nothing(caplog):
    logger = logging.getLogger("gateway.quiet")
    with caplog.at_level(logging.WARNING, logger="gateway.quiet"):
        log_event(logger, logging.DEBUG, "call_event.sent", call_id="c-1")
    assert caplog.records == []
