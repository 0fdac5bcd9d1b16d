"""`python -m simulator` is the same as the `loyalty-sim` console script."""

from simulator.cli import main

if __name__ == "__main__":
    main()
