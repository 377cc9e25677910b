from .cli.main import main

# Named as the console script, so usage lines and _RECALL_COMPLETE work the same under `python -m proxy`.
main(prog_name="recall")
