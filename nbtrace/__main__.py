"""``python -m nbtrace``: the same entry point as the ``nbtrace`` console script."""

from nbtrace.cli import main

if __name__ == "__main__":
    main()
