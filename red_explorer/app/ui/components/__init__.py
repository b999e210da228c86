"""One module per tab: each builds its widgets and wires their events to the handlers."""
