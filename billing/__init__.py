"""Billing: accounts, the double-entry ledger, subscribers, operators and the admin CLI."""
