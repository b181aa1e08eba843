"""``python -m lrreid.cli ...`` (what torchrun launches for multi-process training)."""
from lrreid.cli import main

if __name__ == "__main__":
    main()
