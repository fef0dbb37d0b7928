"""Run -> files: Parquet tables and the JSON summary (and back), Perfetto JSON, HTML."""

from simcluster.export.run_dir import OUTPUT_FILES, RunFolder, load_run, output_files, write_run

__all__ = ["OUTPUT_FILES", "RunFolder", "load_run", "output_files", "write_run"]
