"""Survey ratings: schema, readers and validation, simulator, demographic analysis."""
