"""Sign-on statements: the source (statements/<slug>/<lang>.md), the signatures and their
moderation. The web form (web/sign.py) and the CLI (cli/statement.py) go through here."""
