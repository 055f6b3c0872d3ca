"""Control of a running daemon: the local HTTP/JSON API (server.py) and its client (client.py)."""
