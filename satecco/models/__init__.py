"""SATeCo's model parts, one concept per module (see DESIGN.md's paper-to-code map)."""
