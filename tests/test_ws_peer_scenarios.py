"""40 numbered scenarios where ASGI servers disagree (their WebSocket rows in docs/conformance.md
show the other servers), and where each is pinned to refserver's decided outcome
(docs/decisions.md).

Each scenario is tested once, at the lowest layer that can show it: without sockets in
tests/test_ws_machine.py where the rule is the machine's; on a fake clock in
tests/test_ws_timers.py where it is a timer's; over sockets where it needs a kernel (a FIN, an
RST, a full send buffer) or the runtime (scope, logging, several connections). The conformance
catalogue also runs every one of them against refserver over sockets, on asyncio and trio
(``peer_case`` in refserver/conformance/catalogue/websocket.py; tests/test_conformance.py).

PINNED maps each scenario to the tests that pin it; the one test here checks that the map is
complete and that every test it names exists, so the map cannot go stale silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

from refserver.conformance.catalogue import SCENARIOS

TESTS = Path(__file__).resolve().parent

MACHINE = "test_ws_machine.py::"
PEER_CLOSE = MACHINE + "TestRFC6455Section7_1_5CloseCode::test_peer_close_is_echoed_and_decides_the_disconnect"
SEND_RAISES = MACHINE + "TestDisconnectedClientSendException::test_every_message_raises_saying_why"
APP_CLOSE = MACHINE + "TestCloseSendEvent::test_app_close_waits_for_the_echo_and_drops_data_in_between"
APP_ENDS = (
    "test_ws_timers.py::TestRFC6455Section7_1_1CloseTheConnection::"
    "test_after_the_app_ends_tcp_closes_on_the_answer_or_at_the_close_timeout"
)
REFUSAL = "test_ws_events.py::test_close_before_accept_answers_403_at_once_while_the_app_runs"
SCOPE = "test_ws_scope.py::test_every_scope_key_exactly_typed"
ACCEPT_HEADERS = MACHINE + "TestAcceptSendEvent::test_accept_with_subprotocol_and_headers_keeps_order_and_duplicates"

PINNED: dict[int, tuple[str, ...]] = {
    # 1-6: disconnect codes
    1: ("test_ws_disconnect.py::test_rst_is_1006",),  # network loss, RST: one disconnect, 1006, ""
    2: ("test_ws_disconnect.py::test_fin_without_close_frame_is_1006",),  # FIN without a close frame
    3: (PEER_CLOSE,),  # the client's code and reason reach the app
    4: (MACHINE + "TestRFC6455Section7_1_5CloseCode::test_empty_peer_close_is_1005_and_the_echo_is_empty",),
    5: (PEER_CLOSE,),  # the disconnect at the close frame, TCP closed on the echo
    6: (PEER_CLOSE,),  # the echo keeps the code
    # 7-12: closed sends, repeated receive
    7: (SEND_RAISES,),  # send() after the disconnect was received
    8: ("test_ws_closed_send.py::test_after_an_rst_before_receive",),  # the first send() after an RST
    9: (MACHINE + "TestDisconnectedClientSendException::test_send_after_the_peer_closed_raises_with_its_code",),
    10: (
        MACHINE + "TestDisconnectReceiveEvent::test_every_receive_after_the_disconnect_returns_a_fresh_copy",
        "test_ws_disconnect.py::test_rst_is_1006",
        "test_ws_receive_after_disconnect.py::TestDisconnectReceiveEvent::"
        "test_a_receive_loop_after_the_disconnect_does_not_starve_other_connections",
    ),
    11: (APP_CLOSE,),  # receive() after the app's own close: the peer's echoed code
    12: (APP_CLOSE,),  # send(websocket.close) returns at once; TCP closed on the echo
    # 13-16: refusal, denial
    13: (REFUSAL, MACHINE + "TestCloseSendEvent::test_close_before_accept_is_403"),
    14: (REFUSAL,),  # the 403 does not wait for the app
    15: (
        "test_ws_events.py::test_denial_response_in_one_body_has_content_length",
        "test_ws_events.py::test_denial_response_streams_with_more_body",
    ),
    16: (
        MACHINE + "TestWebSocketDenialResponse::test_denial_start_is_held_until_the_first_body",
        "test_ws_events.py::test_denial_response_streams_with_more_body",
    ),
    # 17-20: the app ends
    17: (APP_ENDS,),
    18: ("test_ws_app_end.py::test_app_ends_before_accept_answers_500",),
    19: ("test_ws_app_end.py::test_app_ends_before_accept_answers_500",),
    20: (APP_ENDS,),
    # 21-26: handshake, scope
    21: (SCOPE, ACCEPT_HEADERS),
    22: ("test_ws_events.py::test_unoffered_subprotocol_raises_and_answers_500",),
    23: (ACCEPT_HEADERS,),
    24: (SCOPE,),
    25: (SCOPE,),
    26: (SCOPE, ACCEPT_HEADERS, "test_ws_events.py::test_close_sends_code_and_reason", SEND_RAISES, PEER_CLOSE),
    # 27-33: app messages
    27: ("test_ws_events.py::test_malformed_sends_raise_and_put_nothing_on_the_wire",),
    28: ("test_ws_events.py::test_malformed_sends_raise_and_put_nothing_on_the_wire",),
    29: (MACHINE + "TestSendSendEvent::test_send_exact_frames",),
    30: (
        "test_ws_events.py::test_wrong_state_messages_before_accept_raise_runtime_errors",
        "test_ws_events.py::test_wrong_state_messages_after_accept_raise_runtime_errors",
        MACHINE + "TestStateTable::test_every_state_and_message_type",
    ),
    31: (
        "test_ws_events.py::test_illegal_close_codes_raise_and_nothing_goes_on_the_wire",
        "test_ws_events.py::test_every_legal_close_code_goes_on_the_wire",
    ),
    32: ("test_ws_events.py::test_long_close_reason_cut_at_a_character_boundary_with_one_warning",),
    33: ("test_ws_events.py::test_close_sends_code_and_reason", PEER_CLOSE),
    # 34-40: the wire
    34: ("test_ws_wire.py::test_default_max_size_is_16_mib",),
    35: (MACHINE + "TestRFC6455Section7_1_7FailTheConnection::test_failures_send_the_code_and_drain",),
    36: (
        "test_ws_timers.py::TestWebSocketKeepalive::"
        "test_pings_come_at_each_interval_and_an_answering_peer_stays_past_the_timeout",
        "test_ws_timers.py::TestWebSocketKeepalive::"
        "test_an_unanswered_ping_closes_with_1011_at_the_ping_timeout_and_the_app_gets_1006",
    ),
    37: (
        "test_ws_wire.py::test_shutdown_sends_1001_to_every_websocket_at_once_and_503_to_pending_handshakes",
        "test_ws_timers.py::TestRFC6455Section7_1_1CloseTheConnection::"
        "test_an_unanswered_shutdown_close_ends_at_the_close_timeout_and_keeps_1001",
    ),
    38: (
        "test_ws_backpressure.py::test_send_waits_while_the_client_does_not_read",
        "test_ws_memory.py::test_memory_bounded_when_client_never_reads",
    ),
    39: ("test_ws_disconnect.py::test_connect_first_when_unread_then_messages_then_disconnect",),
    40: (
        "test_ws_wire.py::test_deflate_negotiated_by_default_and_used_both_ways",
        "test_ws_wire.py::test_deflate_round_trip_with_the_wsproto_client",
    ),
}


def defined_tests(path: Path) -> set[str]:
    """``test_x`` and ``TestY::test_x`` for every test a module defines."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return names


def test_every_numbered_scenario_is_pinned_by_tests_that_exist() -> None:
    assert set(PINNED) == set(range(1, 41))
    assert {s.peer_case for s in SCENARIOS if s.peer_case} == set(PINNED)  # and run by the catalogue
    defined: dict[str, set[str]] = {}
    missing = []
    for case, tests in PINNED.items():
        assert tests, case
        for test in tests:
            module, _, name = test.partition("::")
            if module not in defined:
                defined[module] = defined_tests(TESTS / module)
            if name not in defined[module]:
                missing.append(f"scenario {case}: tests/{test}")
    assert missing == []
