"""Lifespan timing: when the server sends lifespan.shutdown (after its connections are closed),
how long it waits for the answer, and how a failed startup ends the process. Each scenario
carries the rule its level rests on. Standard library only."""

from __future__ import annotations

import dataclasses

from refserver.conformance.catalogue.common import CONNECT_ACCEPT, MUST, SHOULD, UNSPEC, check, lifespan
from refserver.conformance.model import Check, Rule, Scenario, ServerNeeds
from refserver.conformance.steps import (
    AppMark,
    Handshake,
    Mark,
    Receive,
    Request,
    Respond,
    Send,
    ShutdownServer,
    Sleep,
    WaitApp,
    WaitClose,
    WaitResponses,
)

SHUTDOWN_AFTER_CONNECTIONS = Rule(
    MUST,
    'lifespan spec 2.0, "Shutdown - receive event"',
    "Sent to the application when the server has stopped accepting connections and closed all active connections.",
)
WAITS_FOR_COMPLETE = Rule(
    MUST,
    'lifespan spec 2.0, "Shutdown Complete - send event"',
    "Sent by the application when it has completed its cleanup. A server must wait for this message before "
    "terminating.",
)
STARTUP_FAILED_EXITS = Rule(
    SHOULD,
    'lifespan spec 2.0, "Startup Failed - send event"',
    "If a server sees this it should log/print the message provided and then exit.",
)
STARTUP_FAILED_STATUS = Rule(
    UNSPEC,
    'lifespan spec 2.0, "Startup Failed - send event"',
    "If a server sees this it should log/print the message provided and then exit.",
    "the exit status is not named; a non-zero one tells a supervisor the start failed",
)
IN_FLIGHT_FINISHED = Rule(
    UNSPEC,
    'lifespan spec 2.0, "Shutdown - receive event"',
    "Sent to the application when the server has stopped accepting connections and closed all active connections.",
    "whether a request in flight is finished or cut before the connections close is the server's choice",
)

# How long the app takes to answer lifespan.shutdown in lifespan.shutdown-slow-answer: longer than
# a fixed short wait, within refserver's shutdown timeout here (3 s).
SLOW_ANSWER_S = 2.0

PLAIN_LIFESPAN = (
    Receive(10.0),
    Send({"type": "lifespan.startup.complete"}),
    Receive(20.0),
    AppMark("shutdown"),
    Send({"type": "lifespan.shutdown.complete"}),
)


def ruled(rule: Rule, c: Check) -> Check:
    """``c`` with its own rule (and the rule's level)."""
    return dataclasses.replace(c, rule=rule, level=rule.level)


SCENARIOS: list[Scenario] = [
    lifespan(
        id="lifespan.shutdown-after-http",
        title="Shutdown with an HTTP request in flight",
        lesson="lifespan.shutdown comes after the server has closed its connections: the response in flight is "
        "finished (or cut) first, never after the app was told to clean up.",
        refs=('lifespan spec 2.0, "Shutdown - receive event"',),
        level=MUST,
        client=(Request(), WaitApp("hello"), ShutdownServer(), WaitApp("mark:shutdown", timeout=6.0)),
        lifespan_app=PLAIN_LIFESPAN,
        app=(Receive(), Sleep(0.5), Respond(), AppMark("responded")),
        checks=(
            check(
                "order",
                "before",
                first="app@0:ended",
                second="app@lifespan:mark:shutdown",
                label="the request's app ends before lifespan.shutdown",
                show=True,
            ),
            ruled(IN_FLIGHT_FINISHED, check("client.status", "*", choice="200", label="the response in flight")),
        ),
        extension="lifespan",
        server=ServerNeeds(lifespan=True, shutdown=True),
        rule=SHUTDOWN_AFTER_CONNECTIONS,
    ),
    lifespan(
        id="lifespan.shutdown-after-websocket",
        title="Shutdown with a WebSocket open",
        lesson="The WebSocket is closed, and its app told so, before the app gets lifespan.shutdown.",
        refs=('lifespan spec 2.0, "Shutdown - receive event"',),
        level=MUST,
        client=(
            Handshake(),
            WaitApp("sent:websocket.accept"),
            ShutdownServer(),
            WaitClose(5.0),
            WaitApp("mark:shutdown", timeout=6.0),
        ),
        lifespan_app=PLAIN_LIFESPAN,
        app=(*CONNECT_ACCEPT, Receive(10.0), AppMark("disconnected")),
        checks=(
            check(
                "order",
                "before",
                first="app@0:mark:disconnected",
                second="app@lifespan:mark:shutdown",
                label="websocket.disconnect before lifespan.shutdown",
                show=True,
            ),
        ),
        extension="lifespan",
        server=ServerNeeds(lifespan=True, shutdown=True),
        rule=SHUTDOWN_AFTER_CONNECTIONS,
    ),
    lifespan(
        id="lifespan.shutdown-slow-answer",
        title="The app answers lifespan.shutdown two seconds late",
        lesson="The server waits for lifespan.shutdown.complete as long as its shutdown timeout allows, not a "
        "fixed short time.",
        refs=('lifespan spec 2.0, "Shutdown Complete - send event"',),
        level=MUST,
        client=(
            Request(),
            WaitResponses(1),
            Mark("stop"),
            ShutdownServer(),
            WaitApp("mark:answering", timeout=6.0),
        ),
        lifespan_app=(
            Receive(10.0),
            Send({"type": "lifespan.startup.complete"}),
            Receive(20.0),
            Sleep(SLOW_ANSWER_S),
            AppMark("answering"),
            Send({"type": "lifespan.shutdown.complete"}),
        ),
        app=(Receive(), Respond()),
        checks=(
            check(
                "order",
                "before",
                first="app@lifespan:mark:answering",
                second="runner:server_exit",
                label="the server waited for lifespan.shutdown.complete",
                show=True,
            ),
        ),
        extension="lifespan",
        server=ServerNeeds(lifespan=True, shutdown=True),
        app_deadline_s=3.0 + SLOW_ANSWER_S,
        rule=WAITS_FOR_COMPLETE,
    ),
    lifespan(
        id="lifespan.startup-failed-no-message",
        title="lifespan.startup.failed without a message",
        lesson="A startup failure with no message still stops the server; a non-zero exit status tells its supervisor.",
        refs=('lifespan spec 2.0, "Startup Failed - send event"',),
        level=SHOULD,
        client=(),
        lifespan_app=(Receive(10.0), Send({"type": "lifespan.startup.failed"})),
        app=(Receive(), Respond()),
        checks=(
            check("runner", "exited with status *", ev="server_end", label="the server exits", show=True),
            ruled(
                STARTUP_FAILED_STATUS,
                check(
                    "runner",
                    "exited with status *",
                    "still running",
                    choice="exited with status 1*",
                    ev="server_end",
                    label="exit status",
                ),
            ),
        ),
        server=ServerNeeds(lifespan=True, exits=True),
        extension="lifespan",
        rule=STARTUP_FAILED_EXITS,
    ),
]
