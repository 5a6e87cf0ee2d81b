"""`python -m fair_calib_nb`: the `fair-calib` command (notebook 90_cli)."""
from fair_calib_nb.cli import main

if __name__ == '__main__': main()
