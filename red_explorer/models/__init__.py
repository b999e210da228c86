"""Base models: the embedded offline default, a local folder or a hub id."""
