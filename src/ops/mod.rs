//! Layer 4, ops: combinators on streams, one file per combinator.
