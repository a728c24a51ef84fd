//! Layer 5, sinks: where the results of a pipeline go.
