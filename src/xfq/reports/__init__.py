"""Reports: what the money did. DuckDB queries over the ledger, charts, HTML and XLSX exports."""
