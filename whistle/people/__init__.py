"""Accounts, sessions, two-factor sign-in, administration, the administration log, first run."""
