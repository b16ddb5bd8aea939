"""Reading and writing files safely: the one checkpoint reader with its trust policy, atomic
checkpoint saves, and atomic JSON/CSV records."""
