"""The node: the asyncio program each institution runs around the consensus core."""
