"""recall's entry points for people: the `recall` command and its subcommands."""
