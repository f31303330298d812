"""Exchange margin rules: profiles, dated tier tables and liquidation formulas (layer: rules)."""
