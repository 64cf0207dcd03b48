"""The ASGI spec as data and pure functions: versions, message validators, scopes.

Imports nothing of refserver's but :mod:`refserver.errors`.
"""
