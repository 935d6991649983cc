"""``billing-admin``: the staff command line (click), one module per command group.

Commands are thin: parse, open a transaction as the calling operator, call a service in
``billing/``, format the result. See :mod:`billing.cli.main` for the command tree.
"""
