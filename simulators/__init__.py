"""Protocol simulators: real peers (BRAS, switch, CMTS, CAS, bank...) for tests, demos and benchmarks.

Simulators may import ``aaa`` (codec, dictionaries) but never ``billing``: they speak the
protocols from the outside, as the network does.
"""
