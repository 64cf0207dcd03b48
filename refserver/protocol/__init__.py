"""Sans-IO protocol machines: HTTP over h11, WebSocket frames over wsproto's frame layer.

Plain inputs (bytes from the peer, a message from the app, "peer gone", "app ended")
become plain outputs (bytes to write, events for the app, state changes). Nothing here
awaits, touches a socket, reads the clock or logs: that is :mod:`refserver.runtime`.
"""
