import os

from gateway.shared.scoreboard import GatewayState, Scoreboard, WorkerState


def test_ready_needs_a_running_gateway_and_a_fresh_serving_worker():
    board = Scoreboard()
    assert not board.ready(max_age=5)  # booting
    board.gateway_state = GatewayState.RUNNING
    slot = board.free_slot()
    board.assign(slot, os.getpid())
    assert not board.ready(max_age=5)  # the worker is still booting
    board.beat(slot, os.getpid(), WorkerState.SERVING)
    assert board.ready(max_age=5)
    assert not board.ready(max_age=0)  # its heartbeat is too old for this limit
    board.gateway_state = GatewayState.DRAINING
    assert not board.ready(max_age=5)


def test_slots_are_reused_once_cleared():
    board = Scoreboard()
    first = board.free_slot()
    board.assign(first, 123)
    second = board.free_slot()
    assert second != first
    board.clear(first)
    assert board.free_slot() == first
    pid, state, beat = board.read(first)
    assert (pid, state, beat) == (0, WorkerState.EMPTY, 0.0)
    assert board.read(second)[0] == 0
