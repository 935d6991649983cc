"""RADIUS AAA daemon: codec, dictionaries, and (later) protocol, handlers and service wiring."""
