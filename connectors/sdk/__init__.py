"""The agency and provider SDKs and the transports they publish through."""
