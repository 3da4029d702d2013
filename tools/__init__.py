"""Development commands that read several packages at once (``make schemas``)."""
