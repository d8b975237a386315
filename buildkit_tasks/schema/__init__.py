"""The JSON Schema of build-report.json, shipped in the wheel."""
