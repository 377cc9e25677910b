"""recall's entry points for people: the `recall` command and its subcommands, and the pytest plugin
(`recall_proxy`, loaded through the top-level recall_pytest_plugin.py)."""
