"""``python -m leanloop`` is the ``leanloop`` command."""

from leanloop.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
