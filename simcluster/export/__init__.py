"""Run -> files: Parquet tables and the JSON summary, written atomically."""

from simcluster.export.run_dir import OUTPUT_FILES, write_run

__all__ = ["OUTPUT_FILES", "write_run"]
