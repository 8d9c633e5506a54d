"""framebridge bridge: serial devices on WebSocket clients."""
