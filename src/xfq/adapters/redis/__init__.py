"""The Redis claim engine: stock and limits in Redis, decided by Lua, streamed to the ledger."""
