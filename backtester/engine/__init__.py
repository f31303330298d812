"""Simulation engine: int codes (enums), record dtypes (records), the numba kernel (kernel) and
its Python driver (run: ``run_sweep``, ``run_entries``) (layer: engine)."""
