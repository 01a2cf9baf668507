"""Pure loss and likelihood functions (no modules, no state)."""
