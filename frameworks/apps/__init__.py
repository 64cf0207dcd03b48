"""One minimal, idiomatic app a framework: ``GET /`` answers ``hello``; the WebSocket ``/echo``
echoes text and records how it ended; ``/late`` takes one message and sends once the client has
gone (:mod:`frameworks.seen`)."""
