"""The ``redteam`` command: ``inject`` (poison a dataset), later ``bench``."""

from __future__ import annotations

import sys

from audit.cli import new_app

app = new_app("Produce the poisoning attacks of the paper and benchmark the auditor against them.")

# from redteam.inject_cli import inject  -- attached below by the inject module owner


def main() -> None:
    app(prog_name="redteam")


if __name__ == "__main__":
    sys.exit(main())
