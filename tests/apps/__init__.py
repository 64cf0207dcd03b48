"""Small ASGI apps that tests/test_cli.py runs under ``python -m refserver``."""
