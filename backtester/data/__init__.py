"""Market data layer: canonical schema (``schema``), the parquet store (``store``) and the ccxt
downloader (``ccxt_loader``, which alone imports ccxt, inside its functions)."""
