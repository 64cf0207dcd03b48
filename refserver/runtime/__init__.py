"""The anyio shell: the only layer that awaits, touches sockets or reads the clock."""
