"""Demo sections, one module per topic, called by `cryoglass demo`."""
