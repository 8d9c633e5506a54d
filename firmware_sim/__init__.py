"""framebridge firmware simulator: simulated slave devices on real virtual serial ports."""
