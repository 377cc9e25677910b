"""One turn through recall: the call, its state and history, the provider call, the run, the record."""
