"""Review pages served from the server process: the queue, shots, versions, flipbooks and stats in a browser.

Everything here reads the same catalog, blob store and accounts as the gRPC service (see api.py); access
goes through the same tokens and project membership (auth.py).
"""
