"""Operations beyond a create, per API: a stored turn's reads and delete, Conversations, task-run reads."""
