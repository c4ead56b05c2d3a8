# prelude
