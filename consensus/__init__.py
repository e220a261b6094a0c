"""The PBFT replica as a pure state machine, and its deterministic simulator."""
